"""The one-screen texts: the plan before a run, the summary after it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.runner import Outcome, RunOptions

if TYPE_CHECKING:
    from ..engine.plan import Plan

ORDER = ("completed", "failed", "rejected", "in_doubt", "unsubmitted", "pending", "running")
NEXT_STEP = {
    0: "all rows completed",
    1: "finished; some rows failed or were rejected (rerun with --retry-failed to send failed rows again)",
    3: "stopped before the end; rerun the same command to resume",
}


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
    if o.recovered:
        lines.append(f"  {o.recovered} runs behind duplicate-key answers found in the run history")
    if o.downloads is not None:
        d = o.downloads
        lines.append(
            f"  downloads: {d.fetched} fetched ({d.bytes} bytes), {d.skipped} already there"
            + (f", {d.failed} failed (rerun to retry)" if d.failed else "")
        )
    if o.stop_reason:
        lines.append(f"stopped: {o.stop_reason}")
    if o.in_doubt:
        n = o.counts.get("in_doubt", 0)
        lines.append(f"{n} rows in doubt (the server may hold a run we could not identify):")
        lines += [f"  {row}: {why}" for row, why in o.in_doubt[:5]]
        lines.append(
            "  a rerun settles those it can; check your FLORA run history for the rest, then "
            "--resend-in-doubt sends them again under new keys (this can pay twice)"
        )
    lines.append("report: " + ", ".join(str(p) for p in o.reports))
    lines.append(f"exit {o.exit_code}: {NEXT_STEP.get(o.exit_code, '')}")
    return "\n".join(lines)


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
    for p in s.problems[:20]:
        lines.append(f"  {opts.manifest}:{p.line}: {p.reason}")
    if s.problem_count > 20:
        lines.append(f"  ... and {s.problem_count - 20} more invalid rows")
    for tid, tech in plan.techniques.items():
        if tech is not None:
            cost = "unknown" if tech.run_cost is None else f"${tech.run_cost:.4f} a run"
            inputs = ", ".join(f"{i.id}:{i.type}" for i in tech.inputs) or "not listed"
            lines.append(
                f"  technique {tid}: {plan.by_technique[tid]} rows, {cost}; inputs {inputs}"
            )
    lines += [f"  error: {e}" for e in plan.column_errors]
    if plan.estimated_cost is not None:
        lines.append(f"  estimated cost   ${plan.estimated_cost:.2f}")
    if plan.api_note:
        lines.append(f"  note: {plan.api_note}")
    lines.append("nothing was sent (dry run)")
    return "\n".join(lines)
