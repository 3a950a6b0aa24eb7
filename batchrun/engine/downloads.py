"""``--download DIR``: fetch every output file of the completed rows.

Names are stable (row id and output id), so a rerun finds what it already has; each file is
streamed to a temporary name and renamed into place only when whole; what was fetched (path,
bytes, sha256) is recorded in the journal and lands in the report. Media hosts never see the
API key: this client has no credentials at all.

With a journal several workers share (PostgreSQL), ``SharedDownloader`` fetches each file once
across all of them: a worker claims files as it claims rows to send, under a lease its heartbeat
renews, and fetches only those; a dead worker's claims are taken over once their leases ran out.
A file lands in the ``--download`` folder of the host that fetched it; the journal records which
host and path (``report`` from any host lists them).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

from ..api import USER_AGENT
from ..errors import ApiError, TransportError
from ..journal import Download, JournalStore, Leasing
from .context import Emit, Event
from .retry import retrying

FILE_TYPES = ("imageUrl", "videoUrl", "audioUrl", "documentUrl")
DEFAULT_EXT = {"imageUrl": ".png", "videoUrl": ".mp4", "audioUrl": ".mp3", "documentUrl": ".pdf"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    cleaned = _SAFE.sub("_", text).strip("._") or "x"
    if cleaned != text:  # keep distinct ids distinct after cleaning
        cleaned += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return cleaned[:120]


def file_name(row_id: str, output_id: str, output_type: str, url: str) -> str:
    suffix = PurePosixPath(httpx.URL(url).path).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = DEFAULT_EXT.get(output_type, ".bin")
    return f"{safe_name(row_id)}__{safe_name(output_id)}{suffix}"


@dataclass
class DownloadStats:
    fetched: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0


class Downloader:
    host: str | None = None  # recorded with each file (set where a journal is shared)

    def __init__(
        self,
        journal: JournalStore,
        batch: str,
        dest: Path,
        emit: Emit,
        concurrency: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
        give_up: Callable[[], bool] = lambda: False,
    ) -> None:
        self.journal, self.batch, self.dest, self.emit = journal, batch, dest, emit
        self.concurrency = concurrency
        self.transport = transport
        self.give_up = give_up
        self.stats = DownloadStats()

    async def run(self) -> DownloadStats:
        self.dest.mkdir(parents=True, exist_ok=True)
        wanted = self._wanted(count_skipped=True)
        if not wanted:
            return self.stats
        self.emit(Event("notice", {"message": f"downloading {len(wanted)} files to {self.dest}"}))
        async with self._client() as http:
            await self._fetch_all(http, wanted)
        return self.stats

    def _wanted(self, count_skipped: bool = False) -> list[tuple[str, str, str, str]]:
        """(row id, output id, type, url) of the files still to fetch."""
        done = self.journal.downloads(self.batch)
        wanted = []
        for row_id, outputs in self.journal.outputs_to_download(self.batch, FILE_TYPES):
            for o in outputs:
                if self._done(done.get((row_id, o.output_id)), o.url):
                    self.stats.skipped += int(count_skipped)
                    continue
                wanted.append((row_id, o.output_id, o.type, o.url))
        return wanted

    def _done(self, rec: Download | None, url: str) -> bool:
        return rec is not None and rec.url == url and self._have(rec)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.transport,
            follow_redirects=True,
            timeout=httpx.Timeout(60.0, connect=10.0),
            headers={"User-Agent": USER_AGENT},
        )

    async def _fetch_all(
        self, http: httpx.AsyncClient, items: Sequence[tuple[str, str, str, str]]
    ) -> None:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: tuple[str, str, str, str]) -> None:
            async with gate:
                if not self.give_up():
                    await self._fetch(http, *item)

        await asyncio.gather(*(one(w) for w in items))

    def _have(self, rec: Download) -> bool:
        """The file a download recorded is in DIR, whole. The record holds the path as it was
        written, DIR included: only its name is looked for in DIR (joining the whole path to a
        relative DIR again named a file that was never there, so every rerun fetched anew)."""
        try:
            return (self.dest / Path(rec.path).name).stat().st_size == rec.bytes
        except OSError:
            return False

    async def _fetch(
        self, http: httpx.AsyncClient, row_id: str, output_id: str, kind: str, url: str
    ) -> bool:
        name = file_name(row_id, output_id, kind, url)
        target = self.dest / name
        part = self.dest / f".{name}.part"
        try:
            async for attempt in retrying(5, give_up=self.give_up):
                with attempt:
                    size, digest = await self._stream(http, url, part)
        except (ApiError, TransportError, OSError) as exc:
            part.unlink(missing_ok=True)
            self.stats.failed += 1
            self.emit(
                Event("notice", {"message": f"download of {row_id}/{output_id} failed: {exc}"})
            )
            return False
        os.replace(part, target)
        self.journal.record_download(
            self.batch, Download(row_id, output_id, url, str(target), size, digest, self.host)
        )
        self.stats.fetched += 1
        self.stats.bytes += size
        self.emit(Event("downloaded", {"row_id": row_id, "output_id": output_id, "bytes": size}))
        return True

    @staticmethod
    async def _stream(http: httpx.AsyncClient, url: str, part: Path) -> tuple[int, str]:
        sha = hashlib.sha256()
        size = 0
        try:
            async with http.stream("GET", url) as response:
                if response.status_code >= 300:
                    raise ApiError(response.status_code, f"http_{response.status_code}",
                                   f"GET {httpx.URL(url).host} answered {response.status_code}")  # fmt: skip
                with open(part, "wb") as fh:
                    async for chunk in response.aiter_bytes(1 << 16):
                        sha.update(chunk)
                        size += len(chunk)
                        fh.write(chunk)
        except httpx.TransportError as exc:
            raise TransportError(
                f"{type(exc).__name__} fetching from {httpx.URL(url).host}"
            ) from None
        return size, sha.hexdigest()


class SharedDownloader(Downloader):
    """``--download`` by one of several workers on a batch in a shared journal.

    Files are claimed (``Leasing.claim_downloads``) under this worker's lease, which the
    heartbeat of ``LeasedClaims.working`` renews, and fetched only by their claim's holder; a
    file recorded by any worker is done, wherever it landed, unless it was recorded here, in this
    very folder, and is missing (then it is fetched again). Runs while the batch is worked on:
    files of rows completed meanwhile are fetched at once, and the loop ends once ``finished``
    is set and no file is left to fetch; files other workers hold are waited for, and taken over
    when their leases run out. A file that failed here is given back for others to try, and not
    tried here again."""

    wait = 0.5  # seconds between looks while files are held elsewhere or rows still run

    def __init__(
        self,
        journal: JournalStore,
        leasing: Leasing,
        batch: str,
        dest: Path,
        emit: Emit,
        worker_id: str,
        lease_seconds: float,
        concurrency: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
        give_up: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(journal, batch, dest, emit, concurrency, transport, give_up)
        self.leasing, self.worker_id, self.lease_seconds = leasing, worker_id, lease_seconds
        self.host = socket.gethostname()
        self.finished = False  # set once the batch has nothing left to send or poll

    def _done(self, rec: Download | None, url: str) -> bool:
        if rec is None or rec.url != url:
            return False
        here = rec.host == self.host and Path(rec.path).parent == self.dest
        return not here or self._have(rec)

    async def run(self) -> DownloadStats:
        self.dest.mkdir(parents=True, exist_ok=True)
        tried: set[tuple[str, str]] = set()
        told = False
        async with self._client() as http:
            while not self.give_up():
                last = self.finished  # before looking: a row completing later is looked at again
                wanted = {(w[0], w[1]): w for w in self._wanted() if (w[0], w[1]) not in tried}
                if not wanted:
                    if last:
                        break
                    await asyncio.sleep(self.wait)
                    continue
                claimed = self.leasing.claim_downloads(
                    self.batch, self.worker_id, list(wanted), 4 * self.concurrency,
                    self.lease_seconds,
                )  # fmt: skip
                if not claimed:  # held by other workers: theirs, or ours once their leases end
                    await asyncio.sleep(self.wait)
                    continue
                done = self.journal.downloads(self.batch)  # fetched by a claim's last holder
                todo = []
                for key in claimed:
                    w = wanted[key]
                    if self._done(done.get(key), w[3]):
                        self.stats.skipped += 1
                    else:
                        todo.append(w)
                tried.update(claimed)
                if todo and not told:
                    told = True
                    self.emit(Event("notice", {"message": f"downloading files to {self.dest} "
                                                          "(claimed with the other workers)"}))  # fmt: skip
                fetched = await self._fetch_each(http, todo)
                failed = [w for w, ok in zip(todo, fetched, strict=True) if not ok]
                if failed:  # given back: another worker may have better luck
                    self.leasing.claim_downloads(
                        self.batch, self.worker_id, [(w[0], w[1]) for w in failed], len(failed), 0
                    )
        return self.stats

    async def _fetch_each(
        self, http: httpx.AsyncClient, items: Sequence[tuple[str, str, str, str]]
    ) -> list[bool]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: tuple[str, str, str, str]) -> bool:
            async with gate:
                return not self.give_up() and await self._fetch(http, *item)

        return list(await asyncio.gather(*(one(w) for w in items)))
