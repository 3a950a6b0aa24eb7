"""A client for the emulator's control endpoints (``/_emulator/``), shared by the in-process
``EmulatorThread`` and the tests' separate-process helper."""

from __future__ import annotations

from typing import Any

import httpx


class ControlPanel:
    root_url: str
    _panel: httpx.Client | None = None

    def _control(self, method: str, name: str, body: Any = None) -> Any:
        if self._panel is None:
            # Plain HTTP to loopback: no TLS ever happens, and not loading the CA bundle saves
            # ~50 ms per client, which adds up over a test suite.
            self._panel = httpx.Client(
                base_url=f"{self.root_url}/_emulator/", timeout=30, verify=False
            )
        response = self._panel.request(method, name, json=body)
        response.raise_for_status()
        return response.json()

    def close_panel(self) -> None:
        if self._panel is not None:
            self._panel.close()
            self._panel = None

    def ledger(self) -> dict[str, Any]:
        """Every run really created, and the account.

        ``runs`` (creation order), each with created_at, started_at, completed_at,
        pending_seconds, run_seconds, duration_seconds (the drawn times), status, charged_cost
        (None while active), quoted_cost, final_cost, error_code, error_tier, fail_source;
        ``charges_total`` (charged by ended runs), ``charges_committed`` (what every run created
        will charge), ``quotes_total``, ``creates_by_key``, ``active``, ``credits_remaining``.
        """
        result: dict[str, Any] = self._control("GET", "ledger")
        return result

    def stats(self) -> dict[str, Any]:
        """Request counts: api_requests, by_endpoint, by_status, media_auth_leaks, ..."""
        result: dict[str, Any] = self._control("GET", "stats")
        return result

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change some fault settings (e.g. drop=0.1, endpoints=["create"]); returns them all."""
        result: dict[str, Any] = self._control("POST", "faults", changes)
        return result

    def set_config(self, **changes: Any) -> dict[str, Any]:
        """Change run settings at runtime (e.g. duplicate_mode="replay", run_seconds=0.1)."""
        result: dict[str, Any] = self._control("POST", "config", changes)
        return result

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward (runs finish, keys expire); returns its new now."""
        return float(self._control("POST", "clock", {"advance": seconds})["now"])

    def reset(self) -> None:
        self._control("POST", "reset")
