"""Several workers on one batch: rows claimed under leases, heartbeats, batch-wide send slots.

- ``claim_pending``: rows to send, claimed with ``FOR UPDATE SKIP LOCKED`` under a lease; rows
  left 'sending' by a worker whose lease ran out come first, to be resent under the same key and
  body (their task carries both).
- ``renew_leases``: the heartbeat; a worker that stops renewing loses its rows and its slots.
- ``take_send_slots``: how many more creates this worker may start now, decided under a lock
  that serializes the batch, counting runs in flight (rows 'sending' or 'submitted', whoever sent
  them) and slots other workers hold; the slots taken are held until used or released.
- ``mark_sending_leased``: the write-ahead mark, for the rows whose lease this worker still holds;
  a pending row marked uses up one of its slots.
- ``claim_downloads``: output files to fetch (``--download``), claimed like rows to send: one
  worker at a time under a lease, ``FOR UPDATE SKIP LOCKED``, taken over once the lease ran out.

Leases and slots run on the database's clock, so hosts whose clocks differ agree on them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence

from ...models import Run, State
from ..interface import BatchLimits
from ..records import Resends, RowTask
from .base import Cursor, lock_key
from .sending import _TASK_COLS, PgSending, _task

DEFAULT_LEASE_SECONDS = 120.0
_IN_FLIGHT = (State.SENDING.value, State.SUBMITTED.value)
_LEASE = "now() + make_interval(secs => %(lease)s)"
# A worker's leased rows, locked in row id order: the order workers and loads change rows in.
_HELD = "SELECT batch, row_id FROM rows WHERE lease_owner = %(worker)s {} ORDER BY 1, 2 FOR UPDATE"


class PgLeases(PgSending):
    def claim_pending(
        self, batch: str, worker_id: str, limit: int, lease_seconds: float
    ) -> list[RowTask]:
        """Up to ``limit`` rows for ``worker_id`` to send, each under a lease of
        ``lease_seconds``: first rows 'sending' whose lease ran out (resend them under the key
        and body they carry), then pending rows, each group in manifest order. Rows another
        worker holds, or is claiming this very instant, are skipped, never waited for."""
        tasks: list[RowTask] = []
        with self._tx(None) as cur:
            for state in (State.SENDING.value, State.PENDING.value):
                if len(tasks) >= limit:
                    break
                cur.execute(
                    f"UPDATE rows r SET lease_owner = %(worker)s, lease_expires = {_LEASE} "
                    "WHERE (r.batch, r.row_id) IN (SELECT batch, row_id FROM rows "
                    "WHERE batch = %(batch)s AND state = %(state)s AND idx IS NOT NULL "
                    "AND (lease_expires IS NULL OR lease_expires <= now()) "
                    "AND (resend_after IS NULL OR resend_after <= extract(epoch FROM now())) "
                    "ORDER BY idx LIMIT %(n)s FOR UPDATE SKIP LOCKED) "
                    f"RETURNING {', '.join('r.' + c for c in _TASK_COLS.split(', '))}",
                    {
                        "worker": worker_id,
                        "lease": lease_seconds,
                        "batch": batch,
                        "state": state,
                        "n": limit - len(tasks),
                    },
                )
                tasks.extend(sorted(map(_task, cur.fetchall()), key=lambda t: t.idx))
        return tasks

    def renew_leases(self, worker_id: str, lease_seconds: float) -> int:
        """The heartbeat: every lease and send slot ``worker_id`` still holds runs until
        ``lease_seconds`` from now. Leases that already ran out stay lost (another worker may
        hold the row by now). Returns how many rows' leases were renewed."""
        args = {"worker": worker_id, "lease": lease_seconds}
        with self._tx(None) as cur:
            self._heartbeat(cur, worker_id, lease_seconds)
            cur.execute(
                f"UPDATE send_slots SET expires_at = {_LEASE} "
                "WHERE worker_id = %(worker)s AND expires_at > now()",
                args,
            )
            cur.execute(
                f"UPDATE download_claims SET expires_at = {_LEASE} "
                "WHERE worker_id = %(worker)s AND expires_at > now()",
                args,
            )
            cur.execute(
                f"UPDATE rows r SET lease_expires = {_LEASE} "
                f"FROM ({_HELD.format('AND lease_expires > now()')}) held "
                "WHERE r.batch = held.batch AND r.row_id = held.row_id",
                args,
            )
            return cur.rowcount

    @staticmethod
    def _heartbeat(cur: Cursor, worker_id: str, lease_seconds: float) -> None:
        cur.execute(
            "INSERT INTO workers (worker_id, host, pid, lease_seconds) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), "
            "lease_seconds = excluded.lease_seconds",
            (worker_id, socket.gethostname(), os.getpid(), lease_seconds),
        )

    def release_leases(self, worker_id: str) -> int:
        """A worker leaving cleanly: its rows and slots are free for others at once, and it is
        no longer listed. Returns how many rows it held."""
        with self._tx(None) as cur:
            cur.execute("DELETE FROM send_slots WHERE worker_id = %s", (worker_id,))
            cur.execute("DELETE FROM workers WHERE worker_id = %s", (worker_id,))
            cur.execute(
                "UPDATE download_claims SET worker_id = NULL, expires_at = NULL "
                "WHERE worker_id = %s",
                (worker_id,),
            )
            cur.execute(
                "UPDATE rows r SET lease_owner = NULL, lease_expires = NULL "
                f"FROM ({_HELD.format('')}) held "
                "WHERE r.batch = held.batch AND r.row_id = held.row_id",
                {"worker": worker_id},
            )
            return cur.rowcount

    def live_workers(self) -> list[tuple[str, str, int, float]]:
        """(worker id, host, pid, seconds since its heartbeat) of workers whose last heartbeat
        is younger than their lease."""
        return [
            (r[0], r[1], int(r[2]), float(r[3]))
            for r in self._all(
                "SELECT worker_id, host, pid, extract(epoch FROM now() - heartbeat_at) "
                "FROM workers WHERE heartbeat_at + make_interval(secs => lease_seconds) > now() "
                "ORDER BY started_at, worker_id"
            )
        ]

    def claim_downloads(
        self,
        batch: str,
        worker_id: str,
        files: Sequence[tuple[str, str]],
        limit: int,
        lease_seconds: float,
    ) -> list[tuple[str, str]]:
        """Up to ``limit`` of ``files`` ((row id, output id) pairs) for ``worker_id`` to fetch,
        each under a lease of ``lease_seconds``, as ``claim_pending`` claims rows: files whose
        claim another worker holds, or is taking this very instant, are skipped; a claim whose
        lease ran out (its worker died) is taken over; claims ``worker_id`` holds already are
        returned again. The caller reads the journal's downloads once it holds a claim: a file
        recorded meanwhile was fetched by the claim's previous holder."""
        if not files or limit <= 0:
            return []
        rows, outs = [f[0] for f in files], [f[1] for f in files]
        args = {"batch": batch, "worker": worker_id, "lease": lease_seconds, "n": limit,
                "rows": rows, "outs": outs}  # fmt: skip
        with self._tx(None) as cur:
            cur.execute(
                "INSERT INTO download_claims (batch, row_id, output_id) "
                "SELECT %(batch)s, f.r, f.o FROM unnest(%(rows)s::text[], %(outs)s::text[]) "
                "AS f(r, o) ORDER BY 2, 3 ON CONFLICT DO NOTHING",
                args,
            )
            cur.execute(
                "UPDATE download_claims c SET worker_id = %(worker)s, "
                f"expires_at = {_LEASE} WHERE (c.batch, c.row_id, c.output_id) IN ("
                "SELECT d.batch, d.row_id, d.output_id FROM download_claims d "
                "JOIN unnest(%(rows)s::text[], %(outs)s::text[]) AS f(r, o) "
                "ON d.row_id = f.r AND d.output_id = f.o WHERE d.batch = %(batch)s "
                "AND (d.expires_at IS NULL OR d.expires_at <= now() "
                "OR d.worker_id = %(worker)s) "
                "ORDER BY d.row_id, d.output_id LIMIT %(n)s FOR UPDATE OF d SKIP LOCKED) "
                "RETURNING c.row_id, c.output_id",
                args,
            )
            return sorted((str(r[0]), str(r[1])) for r in cur.fetchall())

    # -- batch-wide limits -------------------------------------------------------------------

    def take_send_slots(
        self,
        batch: str,
        worker_id: str,
        want: int,
        concurrency: int,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        rate: float | None = None,
    ) -> int:
        """Up to ``want`` slots to start creates in, so that runs in flight across all workers
        of the batch stay within ``concurrency`` (or a lower limit set by ``throttle``) and, with
        ``rate``, creates started across all workers stay within ``rate`` a second (one token
        bucket for the batch, bursts of up to ``max(1, rate)``). The transaction serializes on
        the batch: two workers never both take the last slot. Slots are held (counted as in
        flight) until ``mark_sending_leased`` uses them, they are released, or
        ``lease_seconds`` pass without a heartbeat. Returns the number taken."""
        if want <= 0:
            return 0
        with self._tx(None) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("slots", batch),))
            busy, cap = self._busy(cur, batch, concurrency)
            n = max(0, min(want, cap - busy))
            if n and rate:
                n = self._take_tokens(cur, batch, n, rate)
            if n:
                cur.execute(
                    "INSERT INTO send_slots (batch, worker_id, held, expires_at) "
                    f"VALUES (%(batch)s, %(worker)s, %(n)s, {_LEASE}) "
                    "ON CONFLICT (batch, worker_id) DO UPDATE SET held = %(n)s + CASE WHEN "
                    "send_slots.expires_at > now() THEN send_slots.held ELSE 0 END, "
                    "expires_at = excluded.expires_at",
                    {"batch": batch, "worker": worker_id, "n": n, "lease": lease_seconds},
                )
        return n

    @staticmethod
    def _take_tokens(cur: Cursor, batch: str, want: int, rate: float) -> int:
        """Up to ``want`` tokens of the batch's shared bucket (refilled at ``rate`` a second
        on the database's clock); called under the batch's lock. Returns how many were taken."""
        burst = max(1.0, rate)
        cur.execute(
            "INSERT INTO batch_limits (batch, rate_tokens, rate_stamp) VALUES (%s, %s, now()) "
            "ON CONFLICT (batch) DO NOTHING",
            (batch, burst),
        )
        row = cur.execute(
            "SELECT least(%(burst)s, coalesce(rate_tokens, %(burst)s) + %(rate)s * "
            "greatest(extract(epoch FROM now() - coalesce(rate_stamp, now())), 0)) "
            "FROM batch_limits WHERE batch = %(batch)s",
            {"burst": burst, "rate": rate, "batch": batch},
        ).fetchone()
        tokens = float(row[0]) if row is not None and row[0] is not None else burst
        n = max(0, min(want, int(tokens + 1e-9)))
        cur.execute(
            "UPDATE batch_limits SET rate_tokens = %s, rate_stamp = now() WHERE batch = %s",
            (tokens - n, batch),
        )
        return n

    def slots_held_by_others(self, batch: str, worker_id: str) -> int:
        """Send slots other workers of the batch hold now (taken, not yet used)."""
        row = self._one(
            "SELECT coalesce(sum(held), 0) FROM send_slots WHERE batch = %s "
            "AND worker_id <> %s AND expires_at > now()",
            (batch, worker_id),
        )
        return 0 if row is None else int(row[0])

    @staticmethod
    def _busy(cur: Cursor, batch: str, concurrency: int) -> tuple[int, int]:
        """(runs in flight plus slots held, the cap now), read in one snapshot."""
        row = cur.execute(
            "SELECT (SELECT count(*) FROM rows WHERE batch = %(batch)s "
            "AND state = ANY(%(states)s) AND idx IS NOT NULL), "
            "(SELECT coalesce(sum(held), 0) FROM send_slots WHERE batch = %(batch)s "
            "AND expires_at > now()), "
            "(SELECT throttle_limit FROM batch_limits WHERE batch = %(batch)s "
            "AND throttle_until > now())",
            {"batch": batch, "states": list(_IN_FLIGHT)},
        ).fetchone()
        assert row is not None
        cap = concurrency if row[2] is None else min(concurrency, int(row[2]))
        return int(row[0]) + int(row[1]), cap

    def in_flight_count(self, batch: str) -> int:
        """Runs in flight across all workers (rows 'sending' or 'submitted'), plus send slots
        taken and not used yet."""
        with self._tx(None) as cur:
            return self._busy(cur, batch, 0)[0]

    def release_send_slots(self, batch: str, worker_id: str, n: int) -> int:
        """Give back ``n`` slots taken and not used. Returns how many this worker still holds."""
        with self._tx(None) as cur:
            cur.execute(
                "UPDATE send_slots SET held = greatest(held - %s, 0) "
                "WHERE batch = %s AND worker_id = %s RETURNING held",
                (n, batch, worker_id),
            )
            row = cur.fetchone()
            return 0 if row is None else int(row[0])

    def mark_sending_leased(
        self,
        batch: str,
        worker_id: str,
        sends: Sequence[tuple[str, str, bytes]],
        answered: Sequence[tuple[str, Run]] = (),
        resends: Resends | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Write-ahead, as ``mark_sending``, for the rows whose lease ``worker_id`` holds now;
        returns those row ids: send only them (a row missing lost its lease to another worker).
        Each pending row marked uses one of the worker's send slots."""
        now = self.clock()
        with self._tx(batch, durable=True) as cur:
            self._lock_in_order(cur, batch, answered, sends)
            self._update_runs(cur, batch, answered, now, keys)
            self._schedule_resends(cur, batch, resends, answered)
            if not sends:
                return []
            cur.execute(
                "SELECT count(*) FILTER (WHERE state = %s) FROM (SELECT state FROM rows "
                "WHERE batch = %s AND row_id = ANY(%s) AND lease_owner = %s "
                "AND lease_expires > now() ORDER BY row_id FOR UPDATE) held",
                (State.PENDING.value, batch, sorted(r for r, _, _ in sends), worker_id),
            )
            row = cur.fetchone()
            fresh = int(row[0]) if row else 0
            marked = self._mark(cur, batch, sends, now, worker_id)
            if fresh:
                cur.execute(
                    "UPDATE send_slots SET held = greatest(held - %s, 0) "
                    "WHERE batch = %s AND worker_id = %s",
                    (fresh, batch, worker_id),
                )
        return marked

    def set_limits(
        self,
        batch: str,
        concurrency: int | None,
        rate: float | None = None,
        max_cost: float | None = None,
    ) -> None:
        """The limits every worker of the batch keeps to (the last run's options win)."""
        with self._tx(None) as cur:
            cur.execute(
                "INSERT INTO batch_limits (batch, concurrency, rate, max_cost) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (batch) DO UPDATE SET "
                "concurrency = excluded.concurrency, rate = excluded.rate, "
                "max_cost = excluded.max_cost, updated_at = now()",
                (batch, concurrency, rate, max_cost),
            )

    def limits(self, batch: str) -> BatchLimits | None:
        r = self._one(
            "SELECT concurrency, rate, max_cost, "
            "greatest(extract(epoch FROM throttle_until - now()), 0), throttle_limit "
            "FROM batch_limits WHERE batch = %s",
            (batch,),
        )
        if r is None:
            return None
        throttled = float(r[3]) if r[3] is not None and r[3] > 0 else 0.0
        return BatchLimits(r[0], r[1], r[2], throttled, r[4] if throttled else None)

    def throttle(self, batch: str, seconds: float, limit: int) -> None:
        """A 429 seen by one worker: for ``seconds``, the batch's cap is ``limit`` for all."""
        with self._tx(None) as cur:
            cur.execute(
                "INSERT INTO batch_limits (batch, throttle_until, throttle_limit) "
                "VALUES (%(batch)s, now() + make_interval(secs => %(s)s), %(limit)s) "
                "ON CONFLICT (batch) DO UPDATE SET throttle_until = greatest("
                "batch_limits.throttle_until, excluded.throttle_until), "
                "throttle_limit = least(excluded.throttle_limit, CASE WHEN "
                "batch_limits.throttle_until > now() THEN batch_limits.throttle_limit END), "
                "updated_at = now()",
                {"batch": batch, "s": seconds, "limit": limit},
            )
