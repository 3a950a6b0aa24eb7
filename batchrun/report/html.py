"""The HTML report: a gallery page, one card per manifest row, to look at a batch in a browser.

One self-contained file: styles and a few lines of plain script inline, no framework, nothing
fetched but the media themselves. Thumbnails come from the downloaded files when they are there
(paths relative to the page, so the folder can be zipped and shared), else from the output URLs.

Every value from the manifest or the API is escaped by Jinja2's autoescape, and a value reaches a
``src`` or ``href`` only as an http(s) URL or as a percent-encoded relative path to a file that
exists; a Content-Security-Policy lets no script run but the page's own, by its hash.

Memory stays flat however many rows there are: each card is rendered as its row arrives, into a
spool file, and the page (whose header needs the counts and the total cost, known only at the
end) is streamed around them with Jinja2's ``stream()``. Jinja2 is imported only when an HTML
report is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit

import jinja2
from markupsafe import Markup

from .. import __version__
from .columns import REPORT_STATUSES, output_columns

TEXT_LIMIT = 4000  # characters of one text shown on a card; the full value is in the tables
ERROR_STATUSES = ("failed", "rejected", "in_doubt")
EMPTY_NOTES = {
    "completed": "no outputs",
    "failed": "failed",
    "pending": "waiting to run",
    "running": "running",
    "rejected": "not sent: invalid row",
    "unsubmitted": "not sent yet",
    "in_doubt": "outcome unknown",
}
_WEB_URL = re.compile(r"https?://[^\x00-\x20\x7f-\x9f\s]+\Z", re.IGNORECASE)
_MEDIA_TYPES = {"imageUrl": "image", "videoUrl": "video", "audioUrl": "audio"}
_NATIVE_COLUMN = "inputs"  # JSONL manifests: the API's own [{id, type, value}, ...]
_SKIPPED_COLUMNS = ("technique_id",)  # shown in the card's footer from the report column


def web_url(value: str) -> str | None:
    """The value when it is an absolute http(s) URL with nothing a browser would strip or
    reinterpret (no spaces or control characters), else None."""
    return value if _WEB_URL.match(value) else None


def relative_href(target: str, page_dir: str) -> str | None:
    """A percent-encoded path from the page's folder to ``target`` (a path, relative to the
    current directory as the downloader records it), or None when no such file exists. The
    encoding turns every ``:`` into ``%3A``, so the result can never be read as a scheme."""
    path = os.path.abspath(target)
    if not os.path.isfile(path):
        return None
    try:
        rel = os.path.relpath(path, page_dir)
    except ValueError:  # another drive on Windows
        return None
    href = quote(rel.replace(os.sep, "/"), safe="/")
    return "./" + href if href.startswith("/") else href


def money(value: float) -> str:
    text = f"{value:,.2f}"
    if abs(value - round(value, 2)) > 1e-9:  # sub-cent costs keep their digits
        text = f"{value:,.6f}".rstrip("0")
    return "$" + text


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _clip(text: str) -> tuple[str, int]:
    """The text to show and how many characters were left out."""
    if len(text) <= TEXT_LIMIT:
        return text, 0
    return text[:TEXT_LIMIT], len(text) - TEXT_LIMIT


@dataclass(slots=True)
class Item:
    """One thing on a card: an output or an input. ``kind`` picks the markup: image, video,
    audio, text, link, or plain (a value that cannot be linked, shown as text)."""

    kind: str
    label: str
    src: str | None = None  # what the element shows (thumbnail, player)
    href: str | None = None  # where a click goes (the full-size file)
    text: str = ""
    more: int = 0  # characters of ``text`` left out


@dataclass(slots=True)
class Card:
    n: int
    row_id: str
    status: str
    empty_note: str
    outputs: list[Item]
    inputs: list[Item]
    error: dict[str, str | None] | None
    cost: str
    technique: str | None
    full: str | None
    took: str | None = None


@dataclass(slots=True)
class Totals:
    counts: Counter[str] = field(default_factory=Counter)
    cost: float = 0.0
    costs_unknown: int = 0
    first: float | None = None
    last: float | None = None

    def add(self, rec: dict[str, Any]) -> None:
        self.counts[rec["status"]] += 1
        if rec["charged_cost"] is not None:
            self.cost += rec["charged_cost"]
        if rec.get("cost_status") == "unknown":
            self.costs_unknown += 1
        created, completed = rec.get("created_at"), rec.get("completed_at")
        if created is not None and (self.first is None or created < self.first):
            self.first = created
        if completed is not None and (self.last is None or completed > self.last):
            self.last = completed


class HtmlReport:
    """The gallery writer: ``add`` one report record at a time, ``close`` to write the page."""

    def __init__(
        self,
        path: Path,
        manifest_columns: Sequence[str],
        *,
        batch: str | None = None,
        wall_seconds: float | None = None,
        made_at: float | None = None,
    ) -> None:
        self.path = path
        self.page_dir = os.path.abspath(path.parent)
        names = output_columns(manifest_columns)[: len(manifest_columns)]
        self.columns = [
            (key, header)
            for key, header in zip(names, manifest_columns, strict=True)
            if header not in _SKIPPED_COLUMNS
        ]
        self.batch = batch
        self.wall_seconds = wall_seconds
        self.made_at = made_at
        self.totals = Totals()
        self.rows = 0
        self._assets: dict[str, str] = {}  # this row's local files -> their asset URLs
        self.card = _environment().get_template("card.html.j2").module.card  # type: ignore[attr-defined]
        # Cards wait here until the header can be written; deleted when closed.
        self.spool: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115 - closed in close()
            "w+", encoding="utf-8", errors="replace", newline="", dir=self.page_dir
        )

    def add(self, rec: dict[str, Any]) -> None:
        self.totals.add(rec)
        self.rows += 1
        self.spool.write(self.card(self.view(rec, self.rows)))

    def close(self) -> None:
        try:
            self.spool.seek(0)
            page = _environment().get_template("gallery.html.j2")
            stream = page.stream(self.context(iter(lambda: self.spool.read(1 << 16), "")))
            stream.enable_buffering(64)
            with open(self.path, "w", encoding="utf-8", errors="replace", newline="") as fh:
                fh.writelines(stream)
        finally:
            self.spool.close()

    # -- one row ----------------------------------------------------------------------------

    def view(self, rec: dict[str, Any], n: int) -> Card:
        status = str(rec["status"])
        saved = {d["output_id"]: d["path"] for d in rec.get("downloads") or ()}
        outputs = [self.output(o, saved.get(o["output_id"])) for o in rec.get("outputs") or ()]
        error = None
        if status in ERROR_STATUSES or rec.get("error_code") or rec.get("error_message"):
            message, more = _clip(rec.get("error_message") or "")
            error = {
                "code": rec.get("error_code"),
                "tier": rec.get("error_tier"),
                "message": message + " …" * bool(more),
            }
        cost = rec.get("charged_cost")
        cost_status = rec.get("cost_status")
        if cost is not None:
            cost_text = money(cost)
        elif cost_status == "unknown":
            cost_text = "cost not reported yet"
        else:
            cost_text = "no charge"
        started, completed = rec.get("started_at"), rec.get("completed_at")
        took = (
            duration(max(0.0, completed - started))
            if started is not None and completed is not None
            else None
        )
        return Card(
            n=n,
            row_id=str(rec["row_id"]),
            status=status,
            empty_note=EMPTY_NOTES.get(status, "no outputs"),
            outputs=outputs,
            inputs=list(self.inputs(rec)),
            error=error,
            cost=cost_text,
            technique=rec.get("technique_id"),
            full=next((o.href for o in outputs if o.href), None),
            took=took,
        )

    def output(self, out: dict[str, Any], saved: str | None) -> Item:
        kind, url = out.get("type") or "", out.get("url") or ""
        label = out.get("output_id") or kind or "output"
        if kind == "text":  # the content travels in the url field
            text, more = _clip(url)
            return Item("text", label, text=text, more=more)
        if not url and not saved:
            return Item("plain", label, text=f"{label}: no address")
        local = relative_href(saved, self.page_dir) if saved else None
        href = local or web_url(url)
        if href is None:
            text, more = _clip(url)
            return Item("plain", label, text=text, more=more)
        media = _MEDIA_TYPES.get(kind)
        if media is None:
            return Item("link", label, href=href, text=_file_name(href) or label)
        return Item(media, label, src=href, href=href)

    def inputs(self, rec: dict[str, Any]) -> Iterator[Item]:
        """The row's manifest cells, typed by their header (``name:imageUrl``) or by the API's
        own list (a JSONL ``inputs`` cell); the id column, which titles the card, is left out."""
        row_id = rec["row_id"]
        # A local file the row named was sent as a FLORA asset: its URL is the thumbnail.
        self._assets = {
            str(a.get("path")): str(a.get("url") or "")
            for a in rec.get("assets") or ()
            if isinstance(a, dict)
        }
        for key, header in self.columns:
            value = rec.get(key)
            if value is None or value == "" or value == row_id:
                continue
            if header == _NATIVE_COLUMN:
                native = _native_inputs(value)
                if native is not None:
                    for input_id, kind, val in native:
                        yield self.input(input_id, kind, val)
                    continue
            base, sep, declared = header.rpartition(":")
            if sep and base.strip() and declared.strip() in ("imageUrl", "videoUrl"):
                yield self.input(base.strip(), declared.strip(), value)
            else:
                yield self.input(header, "text", value)

    def input(self, name: str, kind: str, value: str) -> Item:
        if kind in ("imageUrl", "videoUrl"):
            asset = self._assets.get(value)
            href = web_url(value) or web_url(asset or "") or relative_href(value, self.page_dir)
            if href is not None:
                if kind == "imageUrl":
                    return Item("image", name, src=href, href=href)
                return Item("link", name, href=href, text=_file_name(href) or value)
        text, more = _clip(value)
        return Item("text", name, text=text, more=more)

    # -- the page ---------------------------------------------------------------------------

    def context(self, cards: Iterator[str]) -> dict[str, Any]:
        t = self.totals
        made = time.time() if self.made_at is None else self.made_at
        if self.wall_seconds is not None:
            wall: str | None = duration(self.wall_seconds)
            wall_note = "this run of the batch, start to report"
        elif t.first is not None and t.last is not None:
            wall = duration(max(0.0, t.last - t.first))
            wall_note = "from the first run created to the last one finished"
        else:
            wall, wall_note = None, ""
        total = sum(t.counts.values())
        script = _asset("gallery.js")
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        return {
            "title": self.batch or "batchrun report",
            "batch": self.batch,
            "total": total,
            "counts": [(s, t.counts[s]) for s in _statuses(t.counts) if t.counts[s]],
            "statuses": _statuses(t.counts),
            "cost": money(t.cost),
            "costs_unknown": t.costs_unknown,
            "wall": wall,
            "wall_note": wall_note,
            "made": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(made)),
            "made_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(made)),
            "generator": f"batchrun {__version__}",
            "csp": (
                "default-src 'none'; img-src http: https: file: 'self'; "
                "media-src http: https: file: 'self'; style-src 'unsafe-inline'; "
                f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
            ),
            "css": Markup(_asset("gallery.css")),
            "script": Markup(script),
            "cards": (Markup(chunk) for chunk in cards),
        }


def _statuses(counts: Counter[str]) -> list[str]:
    """The report's statuses in their usual order, then any others the rows carry."""
    return list(REPORT_STATUSES) + sorted(s for s in counts if s not in REPORT_STATUSES)


def _native_inputs(value: str) -> list[tuple[str, str, str]] | None:
    """A JSONL row's ``inputs`` cell, ``[{id, type, value}, ...]``, or None if it is not one."""
    if not value.startswith("["):
        return None
    try:
        items = json.loads(value)
    except ValueError:
        return None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return None
    return [
        (str(i.get("id") or "input"), str(i.get("type") or "text"), _text(i.get("value")))
        for i in items
    ]


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _file_name(href: str) -> str:
    return unquote(urlsplit(href).path.rstrip("/").rpartition("/")[2])


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(__package__ or "batchrun.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


@cache
def _asset(name: str) -> str:
    return (resources.files(__package__ or "batchrun.report") / "templates" / name).read_text(
        encoding="utf-8"
    )
