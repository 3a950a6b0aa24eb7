"""The submitter: sends rows in manifest order within the in-flight and rate limits.

Every send is announced in the journal (key and exact body, committed) before the POST leaves.
Each answer has one meaning for the row, decided in ``_refused`` and ``_adopt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from typing import TYPE_CHECKING

from ..api import Created
from ..errors import ApiError, ConfigError, TransportError
from ..journal import RowTask
from ..keys import idempotency_key, request_body
from ..models import State
from .context import Batch, Event
from .leases import LocalClaims
from .retry import call, is_retryable

if TYPE_CHECKING:
    from tenacity import RetryCallState

_PAGE = 1000
_MAX_GROUP = 200


def _duplicate(exc: ApiError) -> bool:
    """The server holds a run under this key. A 409 of another name, or a success without a
    run id, is read the same way: never a reason to send again."""
    return exc.code in ("idempotency_duplicate", "invalid_response") or (
        exc.status == 409 and exc.code != "idempotency_conflict"
    )


class Submitter:
    def __init__(self, batch: Batch) -> None:
        self.b = batch
        self.done = False
        self.finished = asyncio.Event()  # done, for those who wait on it
        self.sent = 0
        self._later: list[tuple[float, RowTask, int]] = []  # (not before, task, round)
        self._ready: deque[tuple[RowTask, int]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = batch.changed
        self._resend_check: float | None = 0.0  # when to look for tier re-sends next
        self._queued: set[str] = set()  # tier re-sends taken and not yet marked sending
        # Which rows are this process's to send, and how many it may start (see leases).
        self.claims = batch.claims or LocalClaims(batch)

    async def run(self) -> None:
        try:
            self._resume_unconfirmed()
            await self._loop()
            if self._tasks:  # answers still on their way are recorded before we leave
                await asyncio.wait(self._tasks)
        finally:
            self.b.record_answered()
            self.done = True
            self.finished.set()

    def _resume_unconfirmed(self) -> None:
        """Rows a previous process announced but never heard back about: resend the same key and
        body while the server still remembers the key; after that, sending could pay twice."""
        for task in self.claims.unconfirmed():
            self._resume(task)

    def _resume(self, task: RowTask) -> None:
        """One such row (or, with several workers, one whose worker's lease ran out)."""
        b, now = self.b, self.b.wall()
        if task.first_sent_at and now - task.first_sent_at > b.tuning.key_window:
            b.journal.set_state(
                b.name,
                [task.row_id],
                State.IN_DOUBT,
                "key_expired",
                "sent over two hours ago with no answer recorded; the server no longer "
                "remembers its key, so resending could pay twice. Check the run history, then "
                "rerun with --resend-in-doubt to send it again",
            )
        else:
            self._ready.append((task, 0))

    async def _loop(self) -> None:
        b = self.b
        pending: deque[RowTask] = deque()
        after = -1
        gathered = False
        while not b.stop.submitting_stopped:
            self._promote_due()
            self._take_resends(pending)
            if not pending and not self._ready:
                # The first page is small: the first sends should not wait for a thousand rows.
                size = _PAGE if after >= 0 else max(64, 2 * b.meter.limit)
                resume, rows = self.claims.rows(after, size)
                for task in resume:  # with several workers: a dead worker's row, taken over
                    self._resume(task)
                pending.extend(rows)
                b.drained = not pending and not self._ready  # the pacer's cue: last runs out
                if b.drained:
                    b.first_drained.set()
                if pending:
                    after = pending[-1].idx
                elif self._ready:
                    continue
                elif (not self._tasks and not self._later and not self.claims.left()
                      and not self._may_resend()):  # fmt: skip
                    if b.answered:  # a create answered with a failed run: it may send it again
                        b.record_answered()
                        continue
                    return
                else:
                    await self._sleep_until_change(self._next_due())
                    continue
            self.claims.refresh(len(self._ready))
            room = min(b.meter.free(), b.rate.available(), _MAX_GROUP)
            if b.budget is not None:
                allowed = b.budget.allowance()
                if allowed <= 0 and b.meter.in_flight == 0 and not self._tasks:
                    b.stop.stop_submitting(
                        "--max-cost reached; raise it and rerun the same command to continue"
                    )
                    return
                room = min(room, allowed)
            if room <= 0:
                await self._wait_for_room()
                continue
            if room < max(1, b.meter.limit // 4) and not gathered:
                # One turn of the loop for answers already in to free their slots too: one
                # durable commit then covers them all. (A sweep frees all it found at once;
                # waiting longer for more only delayed every run cycle, by 2 ms measured.)
                gathered = True
                await asyncio.sleep(0)
                continue
            gathered = False
            ready = min(len(self._ready), room)  # rows 'sending' already: counted in flight
            room = ready + self.claims.slots(room - ready, len(pending))
            if room <= 0:
                await self.claims.no_slot()
                continue
            group: list[tuple[RowTask, int]] = []
            while self._ready and len(group) < room:
                group.append(self._ready.popleft())
            fresh = []
            while pending and len(group) < room:
                head = pending.popleft()
                if b.assets is not None and not await b.assets.ready(head):
                    # Its files are not ready assets: not sent by this process (see uploads),
                    # nor waited for; the row stays unsubmitted for a rerun.
                    self.claims.skipped.add(head.row_id)
                    self._queued.discard(head.row_id)
                    continue
                task = self._with_key(head)
                fresh.append(task)
                group.append((task, 0))
            if b.budget is not None:
                b.budget.sending(t.row_id for t, _ in group)
            marked = self.claims.mark(
                [(t.row_id, t.idem_key or "", t.body or b"") for t, _ in group],
                *b.take_answered(),
            )
            self._queued.difference_update(t.row_id for t, _ in group)
            if marked is not None:  # rows whose lease went to another worker are its to send
                group = self._still_held(group, set(marked))
            b.meter.take(len(group))
            b.rate.take(len(group))
            for task, rnd in group:
                self._spawn(task, rnd)

    def _still_held(
        self, group: list[tuple[RowTask, int]], marked: set[str]
    ) -> list[tuple[RowTask, int]]:
        lost = [t for t, _ in group if t.row_id not in marked]
        for task in lost:
            self._released(task)
        return [(t, rnd) for t, rnd in group if t.row_id in marked] if lost else group

    def _with_key(self, task: RowTask) -> RowTask:
        key = idempotency_key(
            self.b.name, task.row_id, task.technique_id, task.inputs, task.attempt
        )
        # Local files: the key holds their content's digest, the body their asset's URL.
        inputs = task.inputs if self.b.assets is None else self.b.assets.body_inputs(task, key)
        body = request_body(inputs, key, self.b.callback_url, self.b.mode)
        return dataclasses.replace(task, idem_key=key, body=body)

    def _spawn(self, task: RowTask, rnd: int) -> None:
        t = asyncio.create_task(self._send(task, rnd))
        self._tasks.add(t)
        t.add_done_callback(self._finished_send)

    def _finished_send(self, task: asyncio.Task[None]) -> None:
        # Wake the loop only once the task is gone from the set: woken earlier, it would still
        # count the send as open and sleep again, which held the end of every batch by up to 1 s.
        self._tasks.discard(task)
        self._wake.set()

    def _promote_due(self) -> None:
        now = self.b.mono()
        due = [item for item in self._later if item[0] <= now]
        for item in due:
            self._later.remove(item)
            self._ready.append((item[1], item[2]))

    def _next_due(self) -> float | None:
        later = [t for t, _, _ in self._later]
        if self._resend_check is not None:  # on the wall clock: the journal's time
            later.append(self.b.mono() + max(0.0, self._resend_check - self.b.wall()))
        return min(later, default=None)

    def _take_resends(self, pending: deque[RowTask]) -> None:
        """Rows whose failed run is due to be sent again go ahead of rows never sent."""
        b = self.b
        if b.resend is None:
            return
        now = b.wall()
        if b.resends_scheduled or (self._resend_check is not None and self._resend_check <= now):
            b.resends_scheduled = False
            skipped = self.claims.skipped
            taken = [t for t in self.claims.resends_due(now, _MAX_GROUP) if t.row_id not in skipped]
            due = [t for t in taken if t.row_id not in self._queued]
            self._queued.update(t.row_id for t in due)
            pending.extendleft(reversed(due))
            self._resend_check = b.journal.next_resend(b.name)
            if self._resend_check is not None and self._resend_check <= now:
                # Taken already and not yet sent: look again soon. Only rows this process
                # could not send are due: they are not waited for.
                self._resend_check = now + 0.05 if taken else None

    def _may_resend(self) -> bool:
        """Whether a failed run may still bring a row back: runs out, or re-sends waiting."""
        b = self.b
        return b.resend is not None and (b.meter.in_flight > 0 or self._resend_check is not None)

    async def _sleep_until_change(self, due: float | None) -> None:
        timeout = 1.0 if due is None else max(0.0, min(1.0, due - self.b.mono()))
        if self._wake.is_set():
            self._wake.clear()
            return  # something changed since the last look
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _wait_for_room(self) -> None:
        b = self.b
        if b.meter.free() <= 0:
            await b.meter.wait_free(timeout=self.claims.recheck)
        elif b.rate.available() <= 0:
            await b.rate.wait()
        else:
            await self._sleep_until_change(None)

    # -- one send ------------------------------------------------------------------------------

    async def _send(self, task: RowTask, rnd: int) -> None:
        b = self.b
        sent_at = b.wall()

        async def create() -> Created:
            nonlocal sent_at
            sent_at = b.wall()  # this attempt's start: what the server's clock is set against
            return await b.client.create_run(
                task.technique_id, task.body or b"", task.idem_key or ""
            )

        try:
            created = await call(
                create, b.tuning.send_attempts, self._on_retry, lambda: b.stop.stopping
            )
        except ApiError as exc:
            if _duplicate(exc) and exc.run_id and await self._adopt_named(task, exc.run_id):
                return
            self._refused(task, rnd, exc)
        except TransportError as exc:
            self._unconfirmed(task, rnd, str(exc))
        else:
            self._adopt(task, created, sent_at)

    def _on_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ApiError) and exc.status == 429:
            self.b.meter.throttle(exc.retry_after)
            self.claims.throttled(exc.retry_after)  # with several workers: all of them
            self.b.emit(
                Event(
                    "waiting",
                    {
                        "reason": "rate limited (429): fewer runs in flight for a while",
                        "seconds": exc.retry_after,
                        "limit": self.b.meter.limit,
                    },
                )
            )

    def _adopt(self, task: RowTask, created: Created, sent_at: float | None) -> None:
        b, run = self.b, created.run
        b.answered.append((task.row_id, run, task.idem_key or ""))
        b.settle(task.row_id, run)
        if run.created_at is not None and sent_at is not None and not created.replayed:
            b.clock_offsets.append(run.created_at - sent_at)
            del b.clock_offsets[:-50]
        b.meter.success()
        self.sent += 1
        b.emit(Event("sent", {"row_id": task.row_id, "run_id": run.run_id}))
        if run.finished:
            b.meter.release()
            b.emit(Event("finished", {"row_id": task.row_id, "status": run.status,
                                      "cost": run.charged_cost}))  # fmt: skip

    async def _adopt_named(self, task: RowTask, run_id: str) -> bool:
        """The duplicate answer named the run it holds: fetch that run and take it."""
        b = self.b
        try:
            run = await call(
                lambda: b.client.get_run(task.technique_id, run_id),
                3,
                give_up=lambda: b.stop.stopping,
            )
        except (ApiError, TransportError):
            return False
        self._adopt(task, Created(run, 200, True), None)
        return True

    def _refused(self, task: RowTask, rnd: int, exc: ApiError) -> None:
        b = self.b
        code, status = exc.code, exc.status
        if code == "idempotency_conflict":
            b.meter.release()
            b.journal.set_state(
                b.name,
                [task.row_id],
                State.IN_DOUBT,
                code,
                "the server holds a different request under this row's key; batchrun resends "
                f"bodies byte for byte, so this is a bug: please report it ({exc.describe()})",
            )
            b.emit(Event("notice", {"message": f"row {task.row_id}: {exc.describe()}"}))
        elif _duplicate(exc):
            # The server holds a run under our key but did not say which: never send again.
            b.meter.release()
            b.journal.set_state(
                b.name,
                [task.row_id],
                State.IN_DOUBT,
                "idempotency_duplicate",
                "the server holds a run for this row's key but did not say which; batchrun "
                "adopts it only when the run history singles it out, and every rerun tries again "
                f"({exc.describe()})",
            )
        elif status == 402 or code == "insufficient_credits":
            b.meter.release()
            self._released(task)
            b.journal.unsend(b.name, [task.row_id])
            b.stop.stop_submitting(
                f"insufficient credits: {exc.describe()}; add credits, then rerun the same "
                "command to continue"
            )
        elif status in (401, 403):
            b.meter.release()
            self._released(task)
            b.journal.unsend(b.name, [task.row_id])
            b.stop.request(
                "the API key was refused",
                ConfigError(
                    f"the API refused the API key: {exc.describe()}; check FLORA_API_KEY or "
                    "--api-key"
                ),
            )
        elif is_retryable(exc):
            self._unconfirmed(task, rnd, exc.describe())
        else:
            b.meter.release()
            self._released(task)
            b.journal.set_state(b.name, [task.row_id], State.FAILED, code, exc.describe())
            b.emit(Event("finished", {"row_id": task.row_id, "status": "failed", "cost": None}))

    def _released(self, task: RowTask) -> None:
        if self.b.budget is not None:
            self.b.budget.released(task.row_id)

    def _unconfirmed(self, task: RowTask, rnd: int, why: str) -> None:
        """Retries ran out without an answer: try again later with the same key, a few times."""
        b = self.b
        b.meter.release()
        if rnd + 1 < b.tuning.send_rounds and not b.stop.stopping:
            delay = b.tuning.round_delay * (rnd + 1)
            self._later.append((b.mono() + delay, task, rnd + 1))
            b.emit(Event("waiting", {"reason": f"row {task.row_id}: {why}", "seconds": delay}))
            return
        b.journal.set_state(
            b.name,
            [task.row_id],
            State.SENDING,
            "send_unconfirmed",
            f"no answer to the create after {b.tuning.send_rounds} rounds of retries ({why}); "
            "rerun the same command to resend it under the same key",
        )
