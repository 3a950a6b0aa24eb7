"""How a running batch shows itself: tqdm bars on a terminal, plain or JSON log lines elsewhere
(cron, CI, log collectors). Both are fed the runner's events; neither changes what happens."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

from ..engine.context import Event
from .common import scrub


class Tally:
    """Running counts built from events.

    ``todo``: rows to run when the batch (re)started: unsubmitted, being sent, running. ``sent``:
    of those, rows that have a run (those already running at the start included) or were
    refused outright; a row whose failed run its error tier sends again is back in the queue,
    neither sent nor done, until it is. ``done``: rows whose run ended. ``in_flight``: rows
    sent and not done, what ``sent - done`` says."""

    def __init__(self) -> None:
        self.todo = 0
        self.sent = 0
        self.finished: Counter[str] = Counter()
        self.cost = 0.0
        self.started = time.monotonic()
        self._flying: set[str] = set()  # sent by this process, not finished: a few at a time
        self._resumed = 0  # running when the batch started, not finished yet

    def feed(self, event: Event) -> None:
        d = event.data
        if event.kind == "loaded":
            counts = d["counts"]
            self.todo = sum(counts.get(s, 0) for s in ("pending", "sending", "submitted"))
            self.sent = self._resumed = counts.get("submitted", 0)
        elif event.kind == "sent":
            self.sent += 1
            self._flying.add(str(d.get("row_id")))
        elif event.kind == "finished":
            row = str(d.get("row_id"))
            if row in self._flying:
                self._flying.discard(row)
            elif self._resumed:
                self._resumed -= 1
            else:
                # Refused without a run: sent and done at once. (Or one running at the start,
                # if a refusal took its place earlier: the totals hold either way.)
                self.sent += 1
            self.finished[d["status"]] += 1
            self.cost += d.get("cost") or 0.0
        elif event.kind == "retrying":
            self.finished["failed"] = max(0, self.finished["failed"] - 1)
            self.sent = max(0, self.sent - 1)
        elif event.kind == "cost":
            self.cost += d.get("cost") or 0.0

    @property
    def done(self) -> int:
        return sum(self.finished.values())

    @property
    def in_flight(self) -> int:
        return len(self._flying) + self._resumed

    def fields(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "todo": self.todo,
            "completed": self.finished["completed"],
            "failed": self.finished["failed"],
            "in_flight": self.in_flight,
            "cost": round(self.cost, 6),
            "elapsed": round(time.monotonic() - self.started, 1),
        }


class LogProgress:
    """One line at start, one every ``every`` seconds or 10 % of the rows, and waits and notices
    as they happen. ``json`` writes one JSON object per line."""

    def __init__(self, batch: str, fmt: str = "text", every: float = 30.0,
                 stream: TextIO | None = None) -> None:  # fmt: skip
        self.batch, self.fmt, self.every = batch, fmt, every
        self.stream = stream or sys.stderr
        self.tally = Tally()
        self._last = time.monotonic()
        self._last_pct = 0
        self._last_wait = 0.0
        self._uploads = self._uploaded = 0

    def line(self, kind: str, message: str, **fields: Any) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if self.fmt == "json":
            record = {"ts": stamp, "batch": self.batch, "event": kind, "message": message}
            record.update(fields)
            text = json.dumps(record, ensure_ascii=False, default=str)
        else:
            text = f"{stamp} batchrun[{self.batch}] {message}"
        self.stream.write(scrub(text) + "\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        self.tally.feed(event)
        d, now = event.data, time.monotonic()
        if event.kind == "loaded":
            self.line("start", f"{d['rows']} rows, {self.tally.todo} to run", rows=d["rows"],
                      todo=self.tally.todo)  # fmt: skip
        elif event.kind in ("notice", "stopping"):
            self.line(event.kind, d.get("message") or d.get("reason", ""))
        elif event.kind == "uploads":  # local files to upload as assets, before their rows
            self._uploads, self._uploaded = int(d["files"]), 0
            self.line("uploads", f"uploading {d['files']} local files ({d['bytes']:,} bytes) "
                      "as FLORA assets", files=d["files"], bytes=d["bytes"])  # fmt: skip
        elif event.kind == "uploaded":
            self._uploaded += 1
            n, total = self._uploaded, max(self._uploads, 1)
            if total <= 20 or n == total or (10 * n) // total > (10 * (n - 1)) // total:
                self.line("uploaded", f"uploaded {n}/{total}: {d['path']} ({d['bytes']:,} bytes) "
                          f"as asset {d['asset_id']}", **d)  # fmt: skip
        elif event.kind == "waiting" and now - self._last_wait > 5:
            self._last_wait = now
            secs = d.get("seconds")
            wait = f" (waiting {secs:.1f}s)" if secs else ""
            self.line("waiting", f"{d['reason']}{wait}", seconds=secs)
        elif event.kind in ("finished", "sent"):
            pct = 100 * self.tally.done // self.tally.todo if self.tally.todo else 100
            if now - self._last >= self.every or pct >= self._last_pct + 10:
                self._last, self._last_pct = now, pct - pct % 10
                self.progress()

    def progress(self) -> None:
        f = self.tally.fields()
        self.line(
            "progress",
            f"{f['done']}/{f['todo']} done (completed {f['completed']}, failed {f['failed']}, "
            f"in flight {f['in_flight']}), cost ${f['cost']:.2f}, {f['elapsed']:.0f}s",
            **f,
        )

    def close(self) -> None:
        pass


# Bar layouts, widest first: the first that fits the terminal is drawn (a bar at least
# MIN_BAR wide), so a narrow terminal loses the bar and the times, never the counts.
MIN_BAR = 10
SENT_LAYOUTS = (
    "{desc} {n_fmt}/{total_fmt} |{bar}| {rate_fmt} [{elapsed}]",
    "{desc} {n_fmt}/{total_fmt} |{bar}|",
    "{desc} {n_fmt}/{total_fmt}",
)
DONE_LAYOUTS = (
    "{desc} {n_fmt}/{total_fmt} |{bar}| {counts} [{elapsed}<{remaining}]",
    "{desc} {n_fmt}/{total_fmt} |{bar}| {counts}",
    "{desc} {n_fmt}/{total_fmt} {counts}",
    "{desc} {n_fmt}/{total_fmt} {short}",
)


def pick_layout(layouts: tuple[str, ...], d: dict[str, Any], format_meter: Any) -> str:
    """The widest layout that fits ``d["ncols"]`` (the first without a width)."""
    ncols = d.get("ncols")
    if not ncols:
        return layouts[0]
    for layout in layouts:
        room = MIN_BAR if "{bar}" in layout else 0
        text = format_meter(**{**d, "ncols": None, "bar_format": layout.replace("{bar}", "")})
        if len(text) + room <= ncols:
            return layout
    return layouts[-1]


LAYOUTS = {"sent": SENT_LAYOUTS, "done": DONE_LAYOUTS}


def _fitting(base: Any, fields: Callable[[], dict[str, str]]) -> Any:
    """``base`` (a tqdm class) drawing the widest of its layouts that fits (by its desc), with
    the counts ``fields()`` gives at the moment it draws."""

    class Fitting(base):  # type: ignore[misc]
        @property
        def format_dict(self) -> dict[str, Any]:
            d: dict[str, Any] = super().format_dict
            d.update(fields())
            layouts = LAYOUTS.get(self.desc)
            if layouts:
                d["bar_format"] = pick_layout(layouts, d, self.format_meter)
            return d

    return Fitting


def in_notebook() -> bool:
    """Inside a Jupyter kernel (a notebook or JupyterLab), where a widget shows progress."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has done it
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    if shell is None:
        return False
    # Jupyter's shell, or any shell a kernel runs (Colab's), as tqdm.autonotebook tells them.
    return type(shell).__name__ == "ZMQInteractiveShell" or "IPKernelApp" in getattr(
        shell, "config", {}
    )


class BarProgress:
    """tqdm bars for rows sent and rows done, with the counts and cost beside the second.
    ``notebook``: a Jupyter widget (tqdm.auto); ``ncols``: a fixed width (default: the
    terminal's, followed as it changes)."""

    def __init__(
        self,
        batch: str,
        stream: TextIO | None = None,
        notebook: bool = False,
        ncols: int | None = None,
    ) -> None:
        from tqdm import tqdm  # imported for bars only: quiet and logged runs start faster

        self.batch = batch
        self.notebook = notebook
        base: Any = tqdm
        if notebook:
            from tqdm.auto import tqdm as auto  # a widget in Jupyter

            base = auto
        self.bar: Any = _fitting(base, self._fields)
        self.ncols = ncols
        self.tally = Tally()
        self.stream = stream or sys.stderr
        self.sent: Any = None  # tqdm bars of the class above
        self.done: Any = None
        self.uploads: Any = None
        self._last_wait = 0.0
        self._drawn = 0.0

    def _make(self, desc: str, position: int, n: int) -> Any:
        return self.bar(total=self.tally.todo, initial=n, desc=desc, unit="run",
                        position=position, file=self.stream, ncols=self.ncols,
                        dynamic_ncols=self.ncols is None, bar_format=LAYOUTS[desc][0])  # fmt: skip

    def _fields(self) -> dict[str, str]:
        f = self.tally.fields()
        short = f"ok {f['completed']}, failed {f['failed']}, in flight {f['in_flight']}"
        return {"short": short, "counts": f"{short}, ${f['cost']:.2f}"}

    def __call__(self, event: Event) -> None:
        self.tally.feed(event)
        d = event.data
        if event.kind == "loaded":
            self.sent = self._make("sent", 0, self.tally.sent)
            self.done = self._make("done", 1, 0)
        elif event.kind in ("sent", "finished", "cost", "retrying"):
            self._show()
        elif event.kind == "uploads":  # a third bar while local files become assets
            self.uploads = self.bar(total=d["files"], desc="uploaded", unit="file", position=2,
                                    file=self.stream, ncols=self.ncols,
                                    dynamic_ncols=self.ncols is None)  # fmt: skip
        elif event.kind == "uploaded" and self.uploads is not None:
            self.uploads.update(1)
        elif event.kind in ("notice", "stopping"):
            self.bar.write(scrub(d.get("message") or d.get("reason", "")), file=self.stream)
        elif event.kind == "waiting":
            now = time.monotonic()
            if now - self._last_wait > 5:
                self._last_wait = now
                secs = d.get("seconds")
                wait = f", waiting {secs:.1f}s" if secs else ""
                self.bar.write(scrub(f"{d['reason']}{wait}"), file=self.stream)

    def _show(self) -> None:
        """Counts first, then the bars, so a bar redrawn shows the counts of now. tqdm redraws
        a bar whose count moved at most every 0.1 s; counts that moved alone (in flight, cost)
        are drawn as often. close() draws the last state."""
        if self.sent is None or self.done is None:
            return
        drawn = bool(self.sent.update(self.tally.sent - self.sent.n))
        drawn = bool(self.done.update(self.tally.done - self.done.n)) or drawn
        now = time.monotonic()
        if not drawn and now - self._drawn >= 0.1:
            self.sent.refresh()
            self.done.refresh()
            drawn = True
        if drawn:
            self._drawn = now

    def close(self) -> None:
        for bar in (self.sent, self.done, self.uploads):
            if bar is not None:
                bar.close()


class Silent:
    def __call__(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass
