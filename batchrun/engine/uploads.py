"""Local files as FLORA assets: each content uploaded once per workspace, ahead of the rows that
need it; a row is sent only once every file it names is a ``ready`` asset.

A row's key depends on its files' content (``sha256:<hex>``), never on an asset URL; the URL
takes the value's place only in the create body, which is stored before it is sent, so a resend
is byte for byte the same.

Each content's asset is recorded in the journal per workspace. Its create is announced there
first (durable) and carries an ``Idempotency-Key`` derived from the workspace and the sha256, so
a process killed between the create and its recording sends the same create again: FLORA replays
the answer, or answers 409, and the asset is then found by its name (which carries the content's
digest). A ``pending_upload`` asset found on resume gets a fresh upload URL (``/retry``) before
its bytes are sent. Files over 4 MB go through the signed upload, on a client that carries no
credentials: the upload URL belongs to a storage provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from ..api.assets import Asset, AssetsApi, storage_client, upload_bytes
from ..errors import ApiError, ConfigError, TransportError
from ..journal import AssetRecord, AssetUse, JournalStore, RowTask
from ..keys import canonical_json
from ..manifest.files import DIRECT_MAX_BYTES, LocalFiles, sniff
from ..models import Input, LocalFile, State
from .context import Batch, Event
from .retry import call, is_retryable

if TYPE_CHECKING:
    import httpx

WORKSPACE_ENV = "FLORA_WORKSPACE_ID"
ASSET_KEY_PREFIX = "bra1-"
READY_POLL_SECONDS = 1.0  # as FLORA's own SDK polls an asset until it is ready
READY_TIMEOUT = 120.0
_NAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def asset_key(workspace_id: str, sha256: str) -> str:
    """The create's Idempotency-Key: one per content and workspace, the same on every retry
    and every rerun."""
    text = canonical_json({"v": 1, "workspace": workspace_id, "sha256": sha256})
    return ASSET_KEY_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:40]


def asset_file_name(path: str, sha256: str) -> str:
    """``sku-123.3fa9c1d2e4b5.png``: the file's name with its content's digest, by which a
    create whose answer was lost is found again."""
    p = PurePath(path)
    stem = _NAME_SAFE.sub("_", p.stem).strip("._")[:80] or "file"
    suffix = _NAME_SAFE.sub("", p.suffix)[:10]
    return f"{stem}.{sha256[:12]}{suffix}"


def files_current(journal: JournalStore, batch: str, fingerprint: str) -> bool:
    """The files the batch's last load recorded are there, as they were: the load need not be
    read again. (A load whose files were never recorded is read again too.)"""
    if journal.files_fingerprint(batch) != fingerprint:
        return False
    for f in journal.batch_files(batch):
        try:
            st = os.stat(f.path)
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
            return False
    return True


async def resolve_workspace(api: AssetsApi, given: str | None) -> str:
    """``--workspace`` / FLORA_WORKSPACE_ID, else the only workspace the key sees."""
    if given and given.strip():
        return given.strip()
    try:
        spaces = await call(api.workspaces, 4)
    except ApiError as exc:
        if exc.status in (401, 403):
            raise ConfigError(
                f"the API refused the API key: {exc.describe()}; check FLORA_API_KEY or --api-key"
            ) from None
        raise ConfigError(
            f"cannot list workspaces ({exc.describe()}); pass --workspace ID or set {WORKSPACE_ENV}"
        ) from None
    except TransportError as exc:
        raise ConfigError(f"cannot reach the API to list workspaces: {exc}") from None
    if len(spaces) == 1:
        return spaces[0].workspace_id
    if not spaces:
        raise ConfigError(
            "the manifest names local files, which are uploaded to a workspace, and this API key "
            f"sees none; pass --workspace ID or set {WORKSPACE_ENV}"
        )
    choices = ", ".join(s.workspace_id + (f" ({s.name})" if s.name else "") for s in spaces[:20])
    raise ConfigError(
        f"the manifest names local files, and this API key sees {len(spaces)} workspaces; "
        f"choose one with --workspace ID or {WORKSPACE_ENV} (choices: {choices})"
    )


@dataclass(frozen=True, slots=True)
class Failed:
    """Why a file could not become an asset. ``final``: a rerun would not change it (the row
    fails); else the row stays unsent and a rerun tries again."""

    reason: str
    final: bool


Outcome = AssetRecord | Failed


@dataclass
class UploadStats:
    files: int = 0  # files this run had to upload
    bytes: int = 0
    uploaded: int = 0
    found: int = 0  # assets found again after a lost answer


class Uploads:
    """The batch's assets: started ahead (``start``), awaited per row (``ready``), substituted
    into create bodies (``body_inputs``)."""

    def __init__(
        self,
        b: Batch,
        workspace_id: str,
        manifest_dir: Path,
        concurrency: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.b, self.ws = b, workspace_id
        self.api = AssetsApi(b.client)
        self.manifest_dir = manifest_dir
        self.transport = transport
        self.known: dict[str, AssetRecord] = b.journal.assets(workspace_id)
        self.files: dict[str, LocalFile] = {}
        for f in b.journal.batch_files(b.name):
            self.files.setdefault(f.sha256, f)
        self.stats = UploadStats()
        self._gate = asyncio.Semaphore(concurrency)
        self._jobs: dict[str, asyncio.Task[Outcome]] = {}
        self._storage: httpx.AsyncClient | None = None

    def _ready(self, sha: str) -> AssetRecord | None:
        rec = self.known.get(sha)
        return rec if rec is not None and rec.status == "ready" and rec.url else None

    def start(self) -> None:
        """Upload every file of the batch not yet an asset here, in the order rows name them."""
        todo = [f for f in self.files.values() if self._ready(f.sha256) is None]
        if not todo:
            return
        self.stats.files = len(todo)
        self.stats.bytes = sum(f.size for f in todo)
        self.b.emit(Event("uploads", {"files": len(todo), "bytes": self.stats.bytes}))
        for f in todo:
            self._job(f.sha256, f, None)

    def _job(self, sha: str, f: LocalFile | None, source: str | None) -> asyncio.Task[Outcome]:
        job = self._jobs.get(sha)
        if job is None:
            job = asyncio.create_task(self._guarded(sha, f, source))
            self._jobs[sha] = job
        return job

    async def aclose(self) -> None:
        for job in self._jobs.values():
            job.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs.values(), return_exceptions=True)
        if self._storage is not None:
            await self._storage.aclose()

    # -- what the submitter asks -----------------------------------------------------------

    async def ready(self, task: RowTask) -> bool:
        """Wait until every file the row names is a ready asset. False: do not send the row now
        (the batch is stopping, or an upload failed: a final failure fails the row)."""
        for inp in task.inputs:
            sha = inp.file_sha256
            if sha is None or self._ready(sha) is not None:
                continue
            job = self._job(sha, self.files.get(sha), inp.source)
            if not job.done():
                stop = asyncio.ensure_future(self.b.stop.event.wait())
                try:
                    await asyncio.wait({job, stop}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                if not job.done():
                    return False  # stopping
            outcome = job.result()
            if isinstance(outcome, Failed):
                self._failed(task, inp, outcome)
                return False
        return not self.b.stop.stopping

    def body_inputs(self, task: RowTask, key: str) -> tuple[Input, ...]:
        """The row's inputs as the create body takes them: each file's asset URL in its place.
        Records which assets this send (``key``) names, for the report."""
        out, uses = [], []
        for inp in task.inputs:
            sha = inp.file_sha256
            rec = self._ready(sha) if sha is not None else None
            if sha is None or rec is None or rec.url is None or rec.asset_id is None:
                out.append(inp)  # not a file (a file not ready never gets here: see ready())
                continue
            out.append(Input(inp.id, inp.type, rec.url))
            uses.append(AssetUse(inp.id, inp.source or "", sha, rec.asset_id, rec.url))
        if uses:
            self.b.journal.record_row_assets(self.b.name, task.row_id, key, uses)
        return tuple(out)

    def _failed(self, task: RowTask, inp: Input, failed: Failed) -> None:
        b = self.b
        where = f"input '{inp.id}' ({inp.source})"
        if not failed.final:
            b.emit(Event("notice", {"message": f"row {task.row_id}: {where}: {failed.reason}; "
                                               "not sent, a rerun tries again"}))  # fmt: skip
            return
        b.journal.set_state(
            b.name, [task.row_id], State.FAILED, "asset_failed", f"{where}: {failed.reason}"
        )
        b.emit(Event("finished", {"row_id": task.row_id, "status": "failed", "cost": None}))

    # -- one file ----------------------------------------------------------------------------

    async def _guarded(self, sha: str, f: LocalFile | None, source: str | None) -> Outcome:
        async with self._gate:
            if self.b.stop.stopping:
                return Failed("the batch is stopping", final=False)
            try:
                return await self._upload(sha, f, source)
            except ApiError as exc:
                if exc.status in (401, 403) and not exc.code.startswith("upload_"):
                    self.b.stop.request(
                        "the API key was refused",
                        ConfigError(f"the API refused the API key: {exc.describe()}; check "
                                    "FLORA_API_KEY or --api-key"),
                    )  # fmt: skip
                    return Failed(exc.describe(), final=False)
                return Failed(exc.describe(), final=not is_retryable(exc))
            except TransportError as exc:
                return Failed(str(exc), final=False)
            except OSError as exc:
                return Failed(f"cannot read the file: {exc.strerror or exc}", final=False)

    def _path(self, f: LocalFile | None, source: str | None) -> str:
        if f is not None:
            return f.path
        where = LocalFiles(self.manifest_dir).resolve(source or "")
        if isinstance(where, str):
            raise OSError(where)
        return str(where)

    async def _upload(self, sha: str, f: LocalFile | None, source: str | None) -> Outcome:
        path = self._path(f, source)
        data = await asyncio.to_thread(Path(path).read_bytes)
        if hashlib.sha256(data).hexdigest() != sha:
            return Failed(f"{path} changed since the manifest was read; rerun the same command "
                          "to read it again", final=False)  # fmt: skip
        content_type = f.content_type if f is not None else (sniff(data[:65536]) or "")
        rec = self.known.get(sha)
        if rec is None or rec.asset_id is None:
            rec = self.b.journal.announce_asset(
                AssetRecord(self.ws, sha, "creating", len(data), content_type,
                            asset_file_name(path, sha), self.b.wall())
            )  # fmt: skip
            created = await self._create(rec, data)
            if isinstance(created, Failed):
                return created
            asset = created
            if asset.replayed:  # the answer as first given; what the asset is now may differ
                replayed_id = asset.asset_id
                asset = await self._call(lambda: self.api.get(replayed_id))
            self._record(rec, asset)
        else:
            known_id = rec.asset_id
            asset = await self._call(lambda: self.api.get(known_id))
        via = "direct"
        if asset.status == "failed" and asset.upload is None and len(data) > DIRECT_MAX_BYTES:
            failed_id = asset.asset_id
            asset = await self._retry(failed_id)
        if asset.status == "pending_upload":
            via = "signed"
            asset = await self._send_bytes(asset, rec, data)
            self._record(rec, asset)
        if asset.status not in ("ready", "failed"):
            asset = await self._until_ready(asset)
        self._record(rec, asset)
        if asset.status != "ready" or not asset.url:
            return Failed(asset.failure_message or f"the asset is {asset.status}", final=True)
        self.stats.uploaded += 1
        self.b.emit(Event("uploaded", {"path": path, "bytes": len(data), "sha256": sha,
                                       "asset_id": asset.asset_id, "via": via}))  # fmt: skip
        return self.known[sha]

    async def _call(self, fn: Callable[[], Awaitable[Asset]]) -> Asset:
        return await call(fn, 6, give_up=lambda: self.b.stop.stopping)

    async def _retry(self, asset_id: str) -> Asset:
        """A fresh upload URL; one key for this call's tries (each call is a new request)."""
        key = f"{ASSET_KEY_PREFIX}retry-{uuid.uuid4().hex}"
        return await self._call(lambda: self.api.retry(asset_id, key))

    async def _create(self, rec: AssetRecord, data: bytes) -> Asset | Failed:
        """Create the asset under the content's key; a create whose answer was lost earlier is
        answered again by FLORA (a replay) or found by its name."""
        if self.b.wall() - rec.announced_at > self.b.tuning.key_window:
            found = await self._find(rec)  # FLORA forgot the key: look before creating again
            if found is not None:
                return found
        key = asset_key(self.ws, rec.sha256)
        try:
            if rec.size <= DIRECT_MAX_BYTES:
                return await self._call(lambda: self.api.create_direct(
                    self.ws, data, rec.file_name, rec.content_type, key))  # fmt: skip
            return await self._call(lambda: self.api.create_signed(
                self.ws, rec.file_name, rec.content_type, rec.size, key))  # fmt: skip
        except ApiError as exc:
            if exc.code == "idempotency_conflict":
                return Failed(exc.describe(), final=True)
            if exc.code in ("idempotency_duplicate", "invalid_response") or exc.status == 409:
                found = await self._find(rec)
                if found is not None:
                    return found
                return Failed(
                    "FLORA holds an asset under this file's key but did not say which, and none "
                    f"was found by its name ({exc.describe()})",
                    final=False,
                )
            raise

    async def _find(self, rec: AssetRecord) -> Asset | None:
        found = await call(lambda: self.api.find(self.ws, rec.sha256[:12]), 4,
                           give_up=lambda: self.b.stop.stopping)  # fmt: skip
        same = [a for a in found if a.file_name == rec.file_name
                and a.size_bytes in (None, rec.size) and a.status != "failed"]  # fmt: skip
        same.sort(key=lambda a: a.status != "ready")
        if same:
            self.stats.found += 1
            return same[0]
        return None

    async def _send_bytes(self, asset: Asset, rec: AssetRecord, data: bytes) -> Asset:
        """The signed upload: the bytes to the upload URL (no credentials), then complete."""
        if self._storage is None:
            self._storage = storage_client(self.transport)
        storage, asset_id = self._storage, asset.asset_id
        upload = asset.upload
        if upload is None or asset.replayed:
            # Found again after a crash, or a replayed answer: that URL may be spent or expired.
            asset = await self._retry(asset_id)
            upload = asset.upload
        if upload is None:
            raise ApiError(502, "invalid_response", "a pending upload without an upload URL")
        try:
            await call(lambda: upload_bytes(storage, upload, data, rec.file_name,
                                            rec.content_type), 6,
                       give_up=lambda: self.b.stop.stopping)  # fmt: skip
        except ApiError as exc:
            if is_retryable(exc):
                raise
            # Refused (expired, say): a fresh URL, once.
            asset = await self._retry(asset_id)
            if asset.upload is None:
                raise
            fresh = asset.upload
            await call(lambda: upload_bytes(storage, fresh, data, rec.file_name,
                                            rec.content_type), 6,
                       give_up=lambda: self.b.stop.stopping)  # fmt: skip
        complete_key = asset_key(self.ws, rec.sha256) + "-complete"
        try:
            return await self._call(lambda: self.api.complete(asset_id, complete_key))
        except ApiError as exc:
            if exc.status != 409 and not exc.code.startswith("idempotency_"):
                raise
            # A complete whose answer was lost was made: read the asset instead.
            return await self._call(lambda: self.api.get(asset_id))

    async def _until_ready(self, asset: Asset) -> Asset:
        waited, asset_id = 0.0, asset.asset_id
        while asset.status not in ("ready", "failed") and waited < READY_TIMEOUT:
            if self.b.stop.stopping:
                break
            await asyncio.sleep(READY_POLL_SECONDS)
            waited += READY_POLL_SECONDS
            asset = await self._call(lambda: self.api.get(asset_id))
        return asset

    def _record(self, rec: AssetRecord, asset: Asset) -> None:
        status = asset.status if asset.status in ("pending_upload", "ready", "failed") \
            else "pending_upload"  # fmt: skip
        self.b.journal.record_asset(
            self.ws, rec.sha256, status, asset.asset_id, asset.url, asset.failure_message
        )
        self.known[rec.sha256] = AssetRecord(
            self.ws, rec.sha256, status, rec.size, rec.content_type, rec.file_name,
            rec.announced_at, asset.asset_id, asset.url, asset.failure_message,
        )  # fmt: skip


async def open_uploads(
    b: Batch,
    workspace: str | None,
    manifest_dir: Path,
    concurrency: int = 4,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Uploads | None:
    """The batch's uploads, started, when its manifest names local files (None otherwise):
    the workspace is settled first (a ConfigError names the choices)."""
    if not b.journal.batch_files(b.name):
        return None
    ws = await resolve_workspace(AssetsApi(b.client), workspace or os.environ.get(WORKSPACE_ENV))
    uploads = Uploads(b, ws, manifest_dir, concurrency, transport)
    uploads.start()
    return uploads
