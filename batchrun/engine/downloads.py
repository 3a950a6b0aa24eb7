"""``--download DIR``: fetch every output file of the completed rows.

Names are stable (row id and output id), so a rerun finds what it already has; each file is
streamed to a temporary name and renamed into place only when whole; what was fetched (path,
bytes, sha256) is recorded in the journal and lands in the report. Media hosts never see the
API key: this client has no credentials at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

from ..api import USER_AGENT
from ..errors import ApiError, TransportError
from ..journal import Download, JournalStore
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
        done = self.journal.downloads(self.batch)
        wanted = []
        for row_id, outputs in self.journal.outputs_to_download(self.batch, FILE_TYPES):
            for o in outputs:
                rec = done.get((row_id, o.output_id))
                if rec and rec.url == o.url and self._have(rec):
                    self.stats.skipped += 1
                    continue
                wanted.append((row_id, o.output_id, o.type, o.url))
        if not wanted:
            return self.stats
        self.emit(Event("notice", {"message": f"downloading {len(wanted)} files to {self.dest}"}))
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(
            transport=self.transport,
            follow_redirects=True,
            timeout=httpx.Timeout(60.0, connect=10.0),
            headers={"User-Agent": USER_AGENT},
        ) as http:

            async def one(item: tuple[str, str, str, str]) -> None:
                async with gate:
                    if not self.give_up():
                        await self._fetch(http, *item)

            await asyncio.gather(*(one(w) for w in wanted))
        return self.stats

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
    ) -> None:
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
            return
        os.replace(part, target)
        self.journal.record_download(
            self.batch, Download(row_id, output_id, url, str(target), size, digest)
        )
        self.stats.fetched += 1
        self.stats.bytes += size
        self.emit(Event("downloaded", {"row_id": row_id, "output_id": output_id, "bytes": size}))

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
