"""The emulator's account: runs, idempotency keys, the ledger of charges, request counts.

A run's status is computed from the clock when asked, so nothing runs in the background and a
test can move time by hand.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .catalogue import EXTENSIONS, Spec
from .config import EmulatorConfig


@dataclass
class RunRecord:
    run_id: str
    spec: Spec
    inputs: list[dict[str, str]]
    key: str | None
    body_sha: str
    created_at: float
    duration: float
    pending: float
    fails: bool
    seq: int

    def status(self, now: float) -> str:
        if now >= self.created_at + self.duration:
            return "failed" if self.fails else "completed"
        return "pending" if now < self.created_at + self.pending else "running"


@dataclass
class Store:
    config: EmulatorConfig
    clock: Callable[[], float] = time.time
    runs: dict[str, RunRecord] = field(default_factory=dict)
    order: list[RunRecord] = field(default_factory=list)  # oldest first
    keys: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # key -> (sha, run, at)
    stats: Counter[str] = field(default_factory=Counter)
    auth_seen_off_api: set[str] = field(default_factory=set)
    spent: float = 0.0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)

    def reset(self) -> None:
        self.runs.clear()
        self.order.clear()
        self.keys.clear()
        self.stats.clear()
        self.auth_seen_off_api.clear()
        self.spent = 0.0
        self.rng = random.Random(self.config.seed)

    def chance(self, p: float) -> bool:
        return p > 0 and self.rng.random() < p

    # -- idempotency ----------------------------------------------------------------------------

    def remembered(self, key: str) -> tuple[str, str] | None:
        """(body sha, run id) of a key still inside the window."""
        entry = self.keys.get(key)
        if entry is None:
            return None
        if self.clock() - entry[2] > self.config.idempotency_window:
            del self.keys[key]
            return None
        return entry[0], entry[1]

    # -- runs ---------------------------------------------------------------------------------

    def active(self) -> int:
        now = self.clock()
        count = 0
        for rec in reversed(self.order):
            if now >= rec.created_at + rec.duration + 3600:
                break  # far older runs have all ended
            if rec.status(now) in ("pending", "running"):
                count += 1
        return count

    def create(
        self, spec: Spec, inputs: list[dict[str, str]], key: str | None, sha: str
    ) -> RunRecord:
        cfg = self.config
        duration = cfg.run_seconds * (1 + self.rng.uniform(-cfg.jitter, cfg.jitter))
        pending = cfg.pending_seconds if cfg.pending_seconds is not None else 0.1 * duration
        fails = any("FAIL" in i["value"] for i in inputs if i["type"] == "text")
        fails = fails or self.chance(cfg.faults.fail_rate if cfg.faults else 0.0)
        rec = RunRecord(
            run_id="run_" + uuid.UUID(int=self.rng.getrandbits(128)).hex[:20],
            spec=spec, inputs=inputs, key=key, body_sha=sha, created_at=self.clock(),
            duration=max(0.0, duration), pending=min(pending, duration), fails=fails,
            seq=len(self.order),
        )  # fmt: skip
        self.runs[rec.run_id] = rec
        self.order.append(rec)
        self.spent += spec.run_cost
        if key:
            self.keys[key] = (sha, rec.run_id, rec.created_at)
        return rec

    def _ts(self, value: float | None) -> float | int | None:
        if value is None:
            return None
        return int(value * 1000) if self.config.timestamps == "ms" else round(value, 3)

    def view(
        self, rec: RunRecord, api_base: str, media_base: str, listed: bool = False
    ) -> dict[str, Any]:
        now = self.clock()
        status = rec.status(now)
        end = rec.created_at + rec.duration
        started = rec.created_at + rec.pending if status != "pending" else None
        data: dict[str, Any] = {
            self.config.id_field if not listed else "run_id": rec.run_id,
            "status": status,
            "created_at": self._ts(rec.created_at),
            "poll_url": f"{api_base}/techniques/{rec.spec.technique_id}/runs/{rec.run_id}",
        }
        if status == "pending":
            data["progress"] = 0
        elif status == "running":
            span = max(rec.duration - rec.pending, 1e-9)
            data["progress"] = int(100 * (now - rec.created_at - rec.pending) / span)
            data["started_at"] = self._ts(started)
        else:
            data.update(progress=100, started_at=self._ts(started), completed_at=self._ts(end))
            if status == "failed":
                data.update(
                    error_code="provider_error",
                    error_message="The provider failed to complete the generation.",
                    charged_cost=0,
                )
            else:
                data["outputs"] = self._outputs(rec, media_base)
                if now >= end + self.config.late_cost_seconds:
                    data["charged_cost"] = rec.spec.run_cost
        if listed:
            data.update(
                technique_run_id=rec.run_id,
                project_id="prj_emulator",
                workspace_id="ws_emulator",
                technique={"name": rec.spec.name, "technique_id": rec.spec.technique_id},
            )
        return data

    def _outputs(self, rec: RunRecord, media_base: str) -> list[dict[str, str]]:
        outs = []
        for output_id, kind in rec.spec.outputs:
            if kind == "text":
                prompt = next((i["value"] for i in rec.inputs if i["type"] == "text"), "an image")
                url = f"A caption for {prompt[:60]}"
            else:
                url = f"{media_base}/media/{rec.run_id}/{output_id}.{EXTENSIONS[kind][0]}"
            outs.append({"output_id": output_id, "type": kind, "url": url})
        return outs

    def ledger(self) -> dict[str, Any]:
        now = self.clock()
        runs, by_key = [], Counter[str]()
        charges = 0.0
        for rec in self.order:
            status = rec.status(now)
            cost = rec.spec.run_cost if status == "completed" else 0.0
            charges += cost
            if rec.key:
                by_key[rec.key] += 1
            runs.append({
                "run_id": rec.run_id, "technique_id": rec.spec.technique_id,
                "idempotency_key": rec.key, "body_sha256": rec.body_sha, "inputs": rec.inputs,
                "created_at": rec.created_at, "status": status, "charged_cost": cost,
            })  # fmt: skip
        return {"runs": runs, "charges_total": round(charges, 6), "creates_by_key": dict(by_key)}
