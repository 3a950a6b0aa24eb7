"""FLORA's assets API: workspaces, creating an asset from bytes (one multipart request) or through
a signed upload, completing and reading it. Failures map to ``ApiError`` / ``TransportError`` as
everywhere in this package.

The signed upload's URL belongs to a storage provider: the bytes go there on a client of their
own that carries no credentials (``storage_client``), never on the API's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import ApiError, TransportError
from .answers import api_error, invalid_answer
from .client import USER_AGENT, FloraClient, timeouts


@dataclass(frozen=True, slots=True)
class Workspace:
    workspace_id: str
    name: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class SignedUpload:
    """Where and how to POST the bytes of a ``pending_upload`` asset."""

    url: str
    form_fields: dict[str, str] = field(default_factory=dict)
    file_field: str = "file"
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Asset:
    asset_id: str
    status: str  # pending_upload, ready, failed
    url: str | None = None
    upload: SignedUpload | None = None
    file_name: str | None = None
    size_bytes: int | None = None
    failure_message: str | None = None
    replayed: bool = False


def parse_asset(data: Any, replayed: bool = False) -> Asset:
    if isinstance(data, dict) and isinstance(data.get("asset"), dict):
        data = data["asset"]
    if not isinstance(data, dict) or not (data.get("asset_id") or data.get("id")):
        raise ValueError("asset without an id")
    upload = None
    raw = data.get("upload")
    if isinstance(raw, dict) and raw.get("url"):
        fields = raw.get("form_fields") if isinstance(raw.get("form_fields"), dict) else {}
        upload = SignedUpload(
            url=str(raw["url"]),
            form_fields={str(k): str(v) for k, v in (fields or {}).items()},
            file_field=str(raw.get("file_field") or "file"),
            method=str(raw.get("method") or "POST").upper(),
        )
    elif data.get("upload_url"):
        upload = SignedUpload(url=str(data["upload_url"]))
    size = data.get("size_bytes")
    return Asset(
        asset_id=str(data.get("asset_id") or data.get("id")),
        status=str(data.get("status") or "pending_upload"),
        url=str(data["url"]) if data.get("url") else None,
        upload=upload,
        file_name=str(data["file_name"]) if data.get("file_name") else None,
        size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
        failure_message=str(data["failure_message"]) if data.get("failure_message") else None,
        replayed=replayed,
    )


def multipart(
    fields: Mapping[str, str], file_field: str, file_name: str, content_type: str, data: bytes
) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type. The boundary comes from the content,
    so a retry sends the very same bytes."""
    boundary = "batchrun-" + hashlib.sha256(data).hexdigest()[:32]
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(file_field)}"; '
        f'filename="{_quoted(file_name)}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")


class AssetsApi:
    """The assets endpoints, on the batch's one ``FloraClient`` (its auth, limits, transport)."""

    def __init__(self, client: FloraClient) -> None:
        self.client = client

    async def workspaces(self) -> list[Workspace]:
        c = self.client
        data = c._json(await c._send("GET", c._url("workspaces")))
        items = data.get("workspaces", data.get("data")) if isinstance(data, dict) else data
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and (item.get("workspace_id") or item.get("id")):
                out.append(
                    Workspace(
                        str(item.get("workspace_id") or item.get("id")),
                        str(item["name"]) if item.get("name") else None,
                        str(item["role"]) if item.get("role") else None,
                    )
                )
        return out

    async def _asset(
        self, method: str, parts: tuple[str, ...], *, content: bytes | None = None,
        headers: Mapping[str, str] | None = None, params: Mapping[str, str | int] | None = None,
    ) -> Asset:  # fmt: skip
        c = self.client
        response = await c._send(
            method, c._url(*parts), content=content, headers=headers, params=params
        )
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        try:
            return parse_asset(c._json(response), replayed)
        except ValueError:
            raise invalid_answer(response, "the answer holds no asset id") from None

    async def create_direct(
        self,
        workspace_id: str,
        data: bytes,
        file_name: str,
        content_type: str,
        key: str,
    ) -> Asset:
        """One multipart request with the bytes: the answer is a ready asset."""
        fields = {"workspace_id": workspace_id, "file_name": file_name,
                  "content_type": content_type}  # fmt: skip
        body, ctype = multipart(fields, "file", file_name, content_type, data)
        return await self._asset(
            "POST", ("assets",), content=body,
            headers={"Content-Type": ctype, "Idempotency-Key": key},
        )  # fmt: skip

    async def create_signed(
        self, workspace_id: str, file_name: str, content_type: str, size: int, key: str
    ) -> Asset:
        """Reserve a signed upload: a ``pending_upload`` asset and where to send its bytes."""
        import json

        body = json.dumps(
            {"source": "signed-url", "workspace_id": workspace_id, "file_name": file_name,
             "content_type": content_type, "size_bytes": size},
            separators=(",", ":"),
        ).encode()  # fmt: skip
        return await self._asset(
            "POST", ("assets",), content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )  # fmt: skip

    async def get(self, asset_id: str) -> Asset:
        return await self._asset("GET", ("assets", asset_id))

    async def complete(self, asset_id: str, key: str) -> Asset:
        return await self._asset(
            "POST", ("assets", asset_id, "complete"), content=b"{}",
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )  # fmt: skip

    async def retry(self, asset_id: str, key: str) -> Asset:
        """A fresh upload URL for an upload that failed or expired."""
        return await self._asset(
            "POST", ("assets", asset_id, "retry"), content=b"{}",
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )  # fmt: skip

    async def find(self, workspace_id: str, query: str, limit: int = 50) -> list[Asset]:
        """Assets of the workspace whose names match ``query`` (the first few pages)."""
        c = self.client
        found: list[Asset] = []
        cursor: str | None = None
        for _ in range(5):
            params: dict[str, str | int] = {"workspace_id": workspace_id, "query": query,
                                            "limit": limit}  # fmt: skip
            if cursor:
                params["cursor"] = cursor
            data = c._json(await c._send("GET", c._url("assets"), params=params))
            items = data.get("assets", data.get("data")) if isinstance(data, dict) else None
            for item in items if isinstance(items, list) else []:
                try:
                    found.append(parse_asset(item))
                except ValueError:
                    continue
            meta = data.get("meta") if isinstance(data, dict) else None
            nxt = (meta or {}).get("next_cursor") if isinstance(meta, dict) else None
            nxt = nxt or (data.get("next_cursor") if isinstance(data, dict) else None)
            if not nxt:
                break
            cursor = str(nxt)
        return found


def storage_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client for the storage provider's upload URLs: no auth, no API headers."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeouts(300.0),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=True,
    )


async def upload_bytes(
    http: httpx.AsyncClient, upload: SignedUpload, data: bytes, file_name: str, content_type: str
) -> None:
    """POST the bytes to a signed upload URL with its form fields, the bytes last."""
    body, ctype = multipart(upload.form_fields, upload.file_field, file_name, content_type, data)
    host = httpx.URL(upload.url).host
    try:
        response = await http.request(
            upload.method, upload.url, content=body, headers={"Content-Type": ctype}
        )
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise TransportError(f"{type(exc).__name__} uploading to {host}") from None
    if response.status_code >= 300:
        err = api_error(response)
        # The storage provider's answer, never the API's: its 403 says nothing of the API key.
        raise ApiError(err.status, f"upload_{err.code}", f"upload to {host}: {err.message}",
                       err.request_id, retry_after=err.retry_after)  # fmt: skip
