"""The one-screen texts: the plan before a run, the summary after it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..engine.recovery import ELSEWHERE, elsewhere_advice
from ..engine.runner import Outcome, RunOptions

if TYPE_CHECKING:
    from ..engine.plan import Plan

ORDER = ("completed", "failed", "rejected", "in_doubt", "unsubmitted", "pending", "running")
NEXT_STEP = {
    0: "all rows completed",
    3: "stopped before the end; rerun the same command to resume",
}


def next_step(o: Outcome) -> str:
    if o.exit_code == 3 and o.sent_elsewhere:
        return "not settled; the rows sent from another journal need one of the choices above"
    if o.exit_code != 1:
        return NEXT_STEP.get(o.exit_code, "")
    what = [w for w, n in (("failed", o.counts["failed"]), ("rejected", o.counts["rejected"])) if n]
    steps = []
    if o.counts["failed"]:
        steps.append("--retry-failed sends the failed rows again")
    if o.counts["rejected"]:
        steps.append("fix the rejected rows in the manifest and rerun: they are read again")
    return f"finished; some rows {' or '.join(what)} ({'; '.join(steps)})"


def summary_text(o: Outcome, brief: bool = False) -> str:
    rows = sum(o.counts.values())
    counts = ", ".join(f"{s} {o.counts[s]}" for s in ORDER if o.counts.get(s))
    cost = f"${o.charged_cost:.2f}"
    if o.costs_unknown:
        cost += f" ({o.costs_unknown} costs not reported yet)"
    if brief:
        return f"batch '{o.batch}': {rows} rows: {counts or 'nothing'}; charged {cost}"
    lines = [f"batch '{o.batch}': {rows} rows in {o.wall_seconds:.1f}s, {o.sent} sent now"]
    lines += [f"  {s:<12}{o.counts[s]:>8}" for s in ORDER if o.counts.get(s)]
    lines.append(f"  charged     {cost:>8}")
    if o.retried:
        lines.append(
            f"  {o.retried} rows sent again after a transient failure (--retries), "
            f"{o.retried_completed} of them completed"
        )
    if o.recovered:
        lines.append(f"  {o.recovered} runs behind duplicate-key answers found in the run history")
    if o.downloads is not None:
        d = o.downloads
        lines.append(
            f"  downloads: {d.fetched} fetched ({d.bytes} bytes), {d.skipped} already there"
            + (f", {d.failed} failed (rerun to retry)" if d.failed else "")
        )
    if o.rejected:
        n = o.counts.get("rejected", 0)
        lines.append(f"{n} rows rejected (invalid, not sent):")
        lines += [f"  {why}" for why in o.rejected[:5]]
        if n > len(o.rejected[:5]):
            lines.append(f"  ... and {n - len(o.rejected[:5])} more (the report's error_message)")
    if o.stop_reason:
        lines.append(f"stopped: {o.stop_reason}")
    if o.sent_elsewhere:
        lines += elsewhere_advice(o.sent_elsewhere)
    others = [(row, why) for row, why in o.in_doubt if not why.startswith(ELSEWHERE)]
    n = o.counts.get("in_doubt", 0) - o.sent_elsewhere
    if o.in_doubt and n > 0:
        lines.append(f"{n} rows in doubt (the server may hold a run we could not identify):")
        lines += [f"  {row}: {why}" for row, why in others[:5]]
        lines.append(
            "  a rerun settles those it can; check your FLORA run history for the rest, then "
            "--resend-in-doubt sends them again under new keys (this can pay twice)"
        )
    lines.append("report: " + ", ".join(str(p) for p in o.reports))
    lines.append(f"exit {o.exit_code}: {next_step(o)}")
    return "\n".join(lines)


def summary_record(o: Outcome) -> dict[str, Any]:
    """The summary as one JSON object (``--log-format json``), shaped like the log lines: ts,
    batch, event "summary", message (the one-line summary), then every field of the outcome."""
    record: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "batch": o.batch,
        "event": "summary",
        "message": summary_text(o, brief=True),
    }
    for f in dataclasses.fields(o):
        value = getattr(o, f.name)
        if f.name in ("batch", "sync"):
            continue
        if f.name == "in_doubt":
            value = [{"row_id": row, "why": why} for row, why in value]
        elif f.name == "reports":
            value = [str(p) for p in value]
        elif f.name == "wall_seconds":
            value = round(value, 3)
        elif f.name == "charged_cost":
            value = round(value, 6)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        elif isinstance(value, Mapping):
            value = {k: value[k] for k in ORDER if value.get(k)} | {
                k: v for k, v in value.items() if k not in ORDER and v
            }
        record[f.name] = value
    record["rows"] = sum(o.counts.values())
    record["next_step"] = next_step(o)
    return record


def plan_text(opts: RunOptions, plan: Plan) -> str:
    s = plan.stats
    lines = [
        f"plan for batch '{opts.batch_name}' from {opts.manifest}: {s.rows} rows",
        f"  to send          {plan.to_send:>8}",
        f"  already done     {plan.done:>8}",
        f"  invalid          {s.problem_count:>8}",
    ]
    other = {k: v for k, v in s.by_state.items() if k not in ("pending", "completed", "rejected")}
    lines += [f"  now {k:<13}{v:>8}" for k, v in sorted(other.items())]
    if s.edited:
        lines.append(f"  edited since the last run, will run again: {s.edited}")
    if plan.files_to_upload or plan.files_uploaded:
        lines.append(f"  local files to upload as assets: {plan.files_to_upload} "
                     f"({plan.bytes_to_upload:,} bytes)"
                     + (f"; {plan.files_uploaded} uploaded before" if plan.files_uploaded
                        else ""))  # fmt: skip
    lines += [f"  {p.reason}" for p in s.problems[:20]]  # FILE:LINE: reason
    if s.problem_count > 20:
        lines.append(f"  ... and {s.problem_count - 20} more invalid rows")
    for tid, tech in plan.techniques.items():
        if tech is not None:
            cost = "unknown" if tech.run_cost is None else f"${tech.run_cost:.4f} a run"
            inputs = ", ".join(f"{i.id}:{i.type}" for i in tech.inputs) or "not listed"
            lines.append(
                f"  technique {tid}: {plan.by_technique[tid]} rows, {cost}; inputs {inputs}"
            )
    lines += [f"  note: {n}" for n in plan.notices]
    lines += [f"  error: {e}" for e in plan.column_errors]
    if plan.estimated_cost is not None:
        lines.append(f"  estimated cost   ${plan.estimated_cost:.2f}")
    if plan.api_note:
        lines.append(f"  note: {plan.api_note}")
    lines.append("nothing was sent (dry run)")
    return "\n".join(lines)
