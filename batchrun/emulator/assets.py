"""FLORA's assets, emulated: workspaces, the three ways to create an asset, the signed upload on
the media host (another origin, which refuses a request carrying an Authorization header),
complete, retry, read and list; idempotency keys on the mutating requests as for runs.

Limits as FLORA documents them: direct multipart up to 4 MB (4,000,000 bytes), images, video,
audio and pdf only (sniffed from the bytes), images up to 150 megapixels; a signed upload up to
``max_asset_bytes``. A run whose imageUrl/videoUrl input names an asset of this server that is
not ``ready`` is refused (400).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .asgi import Cut, Reply, Request, error_reply, json_reply
from .config import EmulatorConfig
from .validate import is_http_url, is_private_host

DIRECT_MAX = 4_000_000
MAX_MEGAPIXELS = 150
ACCEPTED = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", "image/heic",
            "image/heif", "video/mp4", "video/webm", "video/quicktime", "audio/mpeg",
            "audio/wav", "audio/ogg", "application/pdf")  # fmt: skip
UPLOAD_PREFIX = "/upload/"
ASSET_MEDIA_PREFIX = "/media/assets/"
Answer = Reply | Cut


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF":
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav"}.get(data[8:12])
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"):
            return "image/heic"
        if brand in (b"mif1", b"msf1"):
            return "image/heif"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"OggS"):
        return "audio/ogg"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return None


def _dimensions(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    return None


# -- multipart/form-data -------------------------------------------------------------------------


@dataclass
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part] | str:
    """The parts by name, or what is wrong with the body."""
    boundary = None
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        return "multipart body without a boundary"
    delimiter = b"--" + boundary.encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        return "multipart body is not closed by its boundary"
    parts: dict[str, Part] = {}
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            return "malformed multipart part"
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            return "multipart part without headers"
        name = filename = ctype = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                for item in value.split(";")[1:]:
                    k, _, v = item.strip().partition("=")
                    if k == "name":
                        name = v.strip('"')
                    elif k == "filename":
                        filename = v.strip('"')
            elif key.strip().lower() == "content-type":
                ctype = value.strip()
        if name is None:
            return "multipart part without a name"
        parts[name] = Part(name, data, filename, ctype)
    return parts


# -- the store -----------------------------------------------------------------------------------


@dataclass
class AssetRec:
    asset_id: str
    workspace_id: str
    file_name: str
    content_type: str
    uploaded_via: str
    created_at: float
    status: str = "pending_upload"
    data: bytes | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    failure_message: str | None = None
    token: str | None = None  # the live signed upload's
    fields: dict[str, str] = field(default_factory=dict)
    expires_at: float | None = None
    key: str | None = None
    ready_at: float | None = None


@dataclass
class KeyUse:
    fingerprint: str
    reply: Reply
    at: float


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class Assets:
    """The emulator's assets: its endpoint handlers and what they remember."""

    def __init__(self, config: EmulatorConfig, now: Any, bases: Any) -> None:
        self.config = config
        self.now = now  # the store's clock
        self.bases = bases  # request -> (api base URL, media base URL)
        self._seq = 0
        self.reset()

    def reset(self) -> None:
        self.assets: dict[str, AssetRec] = {}
        self.keys: dict[str, KeyUse] = {}
        self.by_token: dict[str, str] = {}
        self.uploads = 0
        self.uploads_refused_auth = 0

    # -- views ---------------------------------------------------------------------------------

    def view(self, rec: AssetRec, media: str, with_upload: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "asset_id": rec.asset_id,
            "status": rec.status,
            "uploaded_via": rec.uploaded_via,
            "url": f"{media}{ASSET_MEDIA_PREFIX}{rec.asset_id}/{rec.file_name}",
            "visibility": "workspace",
            "workspace_id": rec.workspace_id,
            "file_name": rec.file_name,
            "content_type": rec.content_type,
            "size_bytes": rec.size_bytes,
            "width": rec.width,
            "height": rec.height,
            "failure_message": rec.failure_message,
            "created_at": _iso(rec.created_at),
        }
        if with_upload and rec.status == "pending_upload" and rec.token:
            url = f"{media}{UPLOAD_PREFIX}{rec.token}"
            out["upload"] = {"method": "POST", "url": url, "form_fields": dict(rec.fields),
                             "file_field": "file", "content_type": "multipart/form-data"}  # fmt: skip
            out["upload_url"] = url
            out["expires_at"] = _iso(rec.expires_at or 0.0)
        return out

    def ledger(self) -> dict[str, Any]:
        by_key: dict[str, int] = {}
        for rec in self.assets.values():
            if rec.key:
                by_key[rec.key] = by_key.get(rec.key, 0) + 1
        return {
            "assets": [
                {"asset_id": r.asset_id, "workspace_id": r.workspace_id, "file_name": r.file_name,
                 "content_type": r.content_type, "status": r.status, "uploaded_via": r.uploaded_via,
                 "sha256": r.sha256, "size_bytes": r.size_bytes, "idempotency_key": r.key,
                 "created_at": r.created_at, "ready_at": r.ready_at}
                for r in self.assets.values()
            ],
            "asset_creates_by_key": by_key,
            "asset_uploads": self.uploads,
            "asset_uploads_refused_auth": self.uploads_refused_auth,
        }  # fmt: skip

    # -- idempotency -------------------------------------------------------------------------

    def _keyed(self, request: Request, fingerprint: str) -> tuple[str | None, Reply | None]:
        key = request.headers.get("idempotency-key")
        if key is None:
            return None, None
        if not key.strip():
            field_ = [{"field": "Idempotency-Key", "message": "must not be empty"}]
            return None, error_reply(400, "input_validation_error", "The request is invalid.",
                                     field_)  # fmt: skip
        seen = self.keys.get(key)
        if seen is not None and self.now() - seen.at >= self.config.idempotency_window:
            del self.keys[key]
            seen = None
        if seen is None:
            return key, None
        if seen.fingerprint != fingerprint:
            message = "This idempotency key was already used with a different request."
            return key, error_reply(422, "idempotency_conflict", message)
        if self.config.duplicate_mode == "replay":
            reply = seen.reply
            return key, Reply(reply.status, reply.body, reply.content_type,
                              {**reply.headers, "idempotent-replayed": "true"})  # fmt: skip
        message = "A request with this idempotency key was already processed."
        return key, error_reply(409, "idempotency_duplicate", message)

    def _remember(self, key: str | None, fingerprint: str, reply: Reply) -> Reply:
        if key is not None and reply.status < 300:
            self.keys[key] = KeyUse(fingerprint, reply, self.now())
        return reply

    def _new(
        self, workspace: str, file_name: str, ctype: str, via: str, key: str | None
    ) -> AssetRec:
        self._seq += 1
        asset_id = f"ast_{self._seq:06x}{secrets.token_hex(6)}"
        rec = AssetRec(asset_id, workspace, file_name, ctype, via, self.now(), key=key)
        self.assets[asset_id] = rec
        return rec

    def _workspace(self, value: Any) -> str | Reply:
        if not isinstance(value, str) or not value.strip():
            field_ = [{"field": "workspace_id", "message": "is required"}]
            return error_reply(400, "input_validation_error", "The request is invalid.", field_)
        if value not in self.config.workspaces:
            return error_reply(404, "not_found", f"Workspace '{value}' not found.")
        return value

    # -- endpoints -----------------------------------------------------------------------------

    async def workspaces(self, request: Request, params: list[str]) -> Answer:
        made = _iso(self.now() - 86400 * 30)
        return json_reply(200, {"workspaces": [
            {"workspace_id": w, "name": f"Workspace {w}", "role": "owner", "created_at": made}
            for w in self.config.workspaces
        ]})  # fmt: skip

    async def create(self, request: Request, params: list[str]) -> Answer:
        ctype = request.headers.get("content-type", "")
        raw = await request.body(DIRECT_MAX + (1 << 16))
        if raw is None:
            message = "is larger than 4 MB; reserve a signed upload (source: signed-url)"
            return error_reply(413, "payload_too_large", "The request body is too large.",
                               [{"field": "file", "message": message}])  # fmt: skip
        if ctype.lower().startswith("multipart/form-data"):
            return self._create_direct(request, ctype, raw)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return error_reply(400, "invalid_json", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return error_reply(400, "input_validation_error", "The request is invalid.",
                               [{"field": "body", "message": "must be a JSON object"}])  # fmt: skip
        return self._create_from_source(request, body)

    def _create_direct(self, request: Request, ctype: str, raw: bytes) -> Answer:
        parts = parse_multipart(ctype, raw)
        if isinstance(parts, str):
            return error_reply(400, "input_validation_error", parts)
        ws = self._workspace(parts["workspace_id"].data.decode() if "workspace_id" in parts
                             else None)  # fmt: skip
        if isinstance(ws, Reply):
            return ws
        file = parts.get("file")
        if file is None or not file.data:
            return error_reply(400, "input_validation_error", "The request is invalid.",
                               [{"field": "file", "message": "is required"}])  # fmt: skip
        if len(file.data) > DIRECT_MAX:
            return error_reply(413, "payload_too_large", "The file is larger than 4 MB.",
                               [{"field": "file", "message": "use source: signed-url"}])  # fmt: skip
        problem = self._check_bytes(file.data)
        if problem is not None:
            return error_reply(400, "input_validation_error", "The request is invalid.",
                               [{"field": "file", "message": problem}])  # fmt: skip
        name = (parts["file_name"].data.decode() if "file_name" in parts
                else file.filename or "upload")  # fmt: skip
        sha = hashlib.sha256(file.data).hexdigest()
        fingerprint = hashlib.sha256(json.dumps([ws, name, sha]).encode()).hexdigest()
        key, early = self._keyed(request, fingerprint)
        if early is not None:
            return early
        rec = self._new(ws, name, sniff(file.data) or "", "direct", key)
        self._store_bytes(rec, file.data)
        rec.status, rec.ready_at = "ready", self.now()
        _, media = self.bases(request)
        return self._remember(key, fingerprint, json_reply(201, self.view(rec, media)))

    def _create_from_source(self, request: Request, body: dict[str, Any]) -> Answer:
        ws = self._workspace(body.get("workspace_id"))
        if isinstance(ws, Reply):
            return ws
        source = body.get("source")
        fingerprint = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        name = body.get("file_name") if isinstance(body.get("file_name"), str) else "upload"
        ctype = body.get("content_type") if isinstance(body.get("content_type"), str) else ""
        if source == "signed-url":
            if ctype and ctype not in ACCEPTED:
                return error_reply(400, "input_validation_error", "The request is invalid.",
                                   [{"field": "content_type",
                                     "message": f"{ctype} is not accepted"}])  # fmt: skip
            size = body.get("size_bytes")
            if isinstance(size, int) and size > self.config.max_asset_bytes:
                return error_reply(400, "input_validation_error", "The request is invalid.",
                                   [{"field": "size_bytes", "message": "is over the limit of "
                                     f"{self.config.max_asset_bytes} bytes"}])  # fmt: skip
            key, early = self._keyed(request, fingerprint)
            if early is not None:
                return early
            rec = self._new(ws, str(name), str(ctype), "signed_url", key)
            self._reserve(rec)
            _, media = self.bases(request)
            return self._remember(key, fingerprint, json_reply(201, self.view(rec, media, True)))
        if not isinstance(source, str) or not is_http_url(source, https_only=True):
            return error_reply(400, "input_validation_error", "The request is invalid.",
                               [{"field": "source", "message": "must be 'signed-url' or a "
                                 "public https URL"}])  # fmt: skip
        if is_private_host(source):
            return error_reply(400, "input_validation_error", "The request is invalid.",
                               [{"field": "source", "message": "must not point to a private, "
                                 "loopback or metadata address"}])  # fmt: skip
        key, early = self._keyed(request, fingerprint)
        if early is not None:
            return early
        rec = self._new(ws, str(name), str(ctype), "url", key)
        rec.status = "failed"
        rec.failure_message = "the emulator fetches nothing from the internet"
        _, media = self.bases(request)
        return self._remember(key, fingerprint, json_reply(201, self.view(rec, media)))

    def _reserve(self, rec: AssetRec) -> None:
        if rec.token:
            self.by_token.pop(rec.token, None)
        rec.token = secrets.token_urlsafe(16)
        rec.fields = {"key": f"uploads/{rec.asset_id}/{rec.file_name}",
                      "policy": secrets.token_hex(8), "x-signature": secrets.token_hex(16)}  # fmt: skip
        rec.expires_at = self.now() + self.config.upload_expiry
        self.by_token[rec.token] = rec.asset_id

    def _check_bytes(self, data: bytes) -> str | None:
        kind = sniff(data)
        if kind is None or kind not in ACCEPTED:
            return "is not a type FLORA accepts (images, video, audio, pdf)"
        dims = _dimensions(data)
        if dims is not None and dims[0] * dims[1] > MAX_MEGAPIXELS * 1_000_000:
            return f"is over {MAX_MEGAPIXELS} megapixels"
        return None

    def _store_bytes(self, rec: AssetRec, data: bytes) -> None:
        rec.data = data
        rec.sha256 = hashlib.sha256(data).hexdigest()
        rec.size_bytes = len(data)
        rec.content_type = sniff(data) or rec.content_type
        dims = _dimensions(data)
        if dims is not None:
            rec.width, rec.height = dims

    def _found(self, asset_id: str) -> AssetRec | Reply:
        rec = self.assets.get(asset_id)
        if rec is None:
            return error_reply(404, "not_found", f"Asset '{asset_id}' not found.")
        return rec

    async def get(self, request: Request, params: list[str]) -> Answer:
        rec = self._found(params[0])
        if isinstance(rec, Reply):
            return rec
        return json_reply(200, self.view(rec, self.bases(request)[1]))

    async def complete(self, request: Request, params: list[str]) -> Answer:
        rec = self._found(params[0])
        if isinstance(rec, Reply):
            return rec
        await request.body()
        fingerprint = "complete:" + rec.asset_id
        key, early = self._keyed(request, fingerprint)
        if early is not None:
            return early
        media = self.bases(request)[1]
        if rec.status == "pending_upload":
            if rec.data is None:
                return error_reply(400, "input_validation_error",
                                   "No file was uploaded to this asset's upload URL.")  # fmt: skip
            problem = self._check_bytes(rec.data)
            if problem is not None:
                rec.status, rec.failure_message = "failed", f"the file {problem}"
            else:
                rec.status, rec.ready_at = "ready", self.now()
            rec.token = None
        return self._remember(key, fingerprint, json_reply(200, self.view(rec, media)))

    async def retry(self, request: Request, params: list[str]) -> Answer:
        rec = self._found(params[0])
        if isinstance(rec, Reply):
            return rec
        await request.body()
        fingerprint = "retry:" + rec.asset_id
        key, early = self._keyed(request, fingerprint)
        if early is not None:
            return early
        if rec.status == "ready" or rec.uploaded_via != "signed_url":
            return error_reply(409, "invalid_state",
                               f"Asset '{rec.asset_id}' is {rec.status}; nothing to retry.")  # fmt: skip
        rec.status, rec.failure_message, rec.data = "pending_upload", None, None
        self._reserve(rec)
        reply = json_reply(200, self.view(rec, self.bases(request)[1], True))
        return self._remember(key, fingerprint, reply)

    async def listing(self, request: Request, params: list[str]) -> Answer:
        q = request.query
        ws = q.get("workspace_id")
        query = (q.get("query") or "").lower()
        try:
            limit = max(1, min(100, int(q.get("limit") or 50)))
            start = int(q.get("cursor") or 0)
        except ValueError:
            return error_reply(400, "input_validation_error", "limit and cursor are numbers.")
        found = [r for r in self.assets.values()
                 if (ws is None or r.workspace_id == ws) and query in r.file_name.lower()]  # fmt: skip
        found.reverse()  # newest first
        page = found[start : start + limit]
        media = self.bases(request)[1]
        nxt = str(start + limit) if start + limit < len(found) else None
        return json_reply(200, {"assets": [self.view(r, media) for r in page],
                                "meta": {"next_cursor": nxt}})  # fmt: skip

    # -- the media host ------------------------------------------------------------------------

    async def upload(self, request: Request) -> Answer:
        """The signed upload URL: the storage provider's, not FLORA's API."""
        if request.headers.get("authorization") is not None:
            self.uploads_refused_auth += 1
            return error_reply(400, "invalid_argument", "Only one auth mechanism allowed; an "
                               "Authorization header is not accepted with a signed upload.")  # fmt: skip
        token = request.path[len(UPLOAD_PREFIX) :].strip("/")
        rec = self.assets.get(self.by_token.get(token, ""))
        if request.method != "POST" or rec is None or rec.token != token:
            return error_reply(403, "access_denied", "Invalid or used upload URL.")
        if self.now() > (rec.expires_at or 0.0):
            return error_reply(403, "access_denied", "Request has expired.")
        raw = await request.body(self.config.max_asset_bytes + (1 << 16))
        if raw is None:
            return error_reply(400, "entity_too_large", "The file is over the upload limit.")
        parts = parse_multipart(request.headers.get("content-type", ""), raw)
        if isinstance(parts, str):
            return error_reply(400, "malformed_post_request", parts)
        for name, value in rec.fields.items():
            if name not in parts or parts[name].data.decode("utf-8", "replace") != value:
                return error_reply(403, "access_denied", f"Form field '{name}' missing or wrong.")
        file = parts.get("file")
        if file is None:
            return error_reply(400, "malformed_post_request", "No 'file' part.")
        if list(parts)[-1] != "file":
            return error_reply(400, "malformed_post_request", "The file must be the last part.")
        self._store_bytes(rec, file.data)
        self.uploads += 1
        return Reply(204, b"", content_type="text/plain")

    def media(self, path: str) -> Reply | None:
        """An asset's bytes at its URL (ready assets only)."""
        if not path.startswith(ASSET_MEDIA_PREFIX):
            return None
        asset_id = path[len(ASSET_MEDIA_PREFIX) :].split("/", 1)[0]
        rec = self.assets.get(asset_id)
        if rec is None or rec.status != "ready" or rec.data is None:
            return error_reply(404, "not_found", "No such file.")
        return Reply(200, rec.data, content_type=rec.content_type or "application/octet-stream")

    def not_ready(self, inputs: list[dict[str, str]]) -> list[dict[str, str]]:
        """Problems with run inputs that name an asset of this server that is not ready."""
        problems = []
        for n, item in enumerate(inputs):
            if item.get("type") not in ("imageUrl", "videoUrl"):
                continue
            path = urlsplit(item.get("value", "")).path
            if not path.startswith(ASSET_MEDIA_PREFIX):
                continue
            asset_id = path[len(ASSET_MEDIA_PREFIX) :].split("/", 1)[0]
            rec = self.assets.get(asset_id)
            if rec is None or rec.status != "ready":
                state = "not found" if rec is None else rec.status
                problems.append({"field": f"inputs[{n}].value",
                                 "message": f"asset '{asset_id}' is not ready ({state})"})  # fmt: skip
        return problems
