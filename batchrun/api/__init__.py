"""The FLORA API: one client over one ``httpx.AsyncClient``, its answers parsed into models,
every failure mapped to ``ApiError`` or ``TransportError`` at this one boundary."""

from __future__ import annotations

from .client import DEFAULT_BASE_URL, USER_AGENT, Created, FloraClient, RunPage

__all__ = ["DEFAULT_BASE_URL", "USER_AGENT", "Created", "FloraClient", "RunPage"]
