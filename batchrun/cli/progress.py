"""How a running batch shows itself: tqdm bars on a terminal, plain or JSON log lines elsewhere
(cron, CI, log collectors). Both are fed the runner's events; neither changes what happens."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, TextIO

from ..engine.context import Event
from .common import scrub

if TYPE_CHECKING:
    from tqdm import tqdm


class Tally:
    """Running counts built from events."""

    def __init__(self) -> None:
        self.todo = 0
        self.sent = 0
        self.finished: Counter[str] = Counter()
        self.cost = 0.0
        self.started = time.monotonic()

    def feed(self, event: Event) -> None:
        d = event.data
        if event.kind == "loaded":
            counts = d["counts"]
            self.todo = sum(counts.get(s, 0) for s in ("pending", "sending", "submitted"))
        elif event.kind == "sent":
            self.sent += 1
        elif event.kind == "finished":
            self.finished[d["status"]] += 1
            self.cost += d.get("cost") or 0.0
        elif event.kind == "cost":
            self.cost += d.get("cost") or 0.0

    @property
    def done(self) -> int:
        return sum(self.finished.values())

    @property
    def in_flight(self) -> int:
        return max(0, self.sent - self.done)

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


class BarProgress:
    """tqdm bars for runs sent and runs finished, with counts and cost alongside."""

    def __init__(self, batch: str, stream: TextIO | None = None, notebook: bool = False) -> None:
        from tqdm import tqdm  # imported for bars only: quiet and logged runs start faster

        self.batch = batch
        self.bar: Any = tqdm
        if notebook:
            from tqdm.auto import tqdm as auto  # a widget in Jupyter, text elsewhere

            self.bar = auto
        self.tally = Tally()
        self.stream = stream or sys.stderr
        self.sent: tqdm[Any] | None = None
        self.done: tqdm[Any] | None = None
        self._last_wait = 0.0

    def __call__(self, event: Event) -> None:
        self.tally.feed(event)
        d = event.data
        if event.kind == "loaded":
            total = self.tally.todo
            self.sent = self.bar(total=total, desc="sent", unit="run", position=0, file=self.stream,
                             dynamic_ncols=True)  # fmt: skip
            self.done = self.bar(total=total, desc="done", unit="run", position=1, file=self.stream,
                             dynamic_ncols=True)  # fmt: skip
        elif event.kind == "sent" and self.sent is not None:
            self.sent.update(1)
        elif event.kind in ("finished", "cost") and self.done is not None:
            if event.kind == "finished":
                self.done.update(1)
            f = self.tally.fields()
            self.done.set_postfix(ok=f["completed"], failed=f["failed"],
                                  in_flight=f["in_flight"], cost=f"${f['cost']:.2f}",
                                  refresh=False)  # fmt: skip
        elif event.kind in ("notice", "stopping"):
            self.bar.write(scrub(d.get("message") or d.get("reason", "")), file=self.stream)
        elif event.kind == "waiting":
            now = time.monotonic()
            if now - self._last_wait > 5:
                self._last_wait = now
                secs = d.get("seconds")
                wait = f", waiting {secs:.1f}s" if secs else ""
                self.bar.write(scrub(f"{d['reason']}{wait}"), file=self.stream)

    def close(self) -> None:
        for bar in (self.sent, self.done):
            if bar is not None:
                bar.close()


class Silent:
    def __call__(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass
