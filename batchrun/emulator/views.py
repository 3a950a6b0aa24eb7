"""How runs and techniques look on the wire, in whichever of FLORA's readings is configured."""

from __future__ import annotations

from typing import Any

from .catalogue import MEDIA_TYPES, TechniqueSpec
from .config import EmulatorConfig
from .state import PROJECT_ID, WORKSPACE_ID, RunRecord


class Views:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config

    def _ts(self, value: float) -> float | int:
        if self.config.timestamps == "ms":
            return round(value * 1000)
        return round(value, 6)

    def _optional(self, data: dict[str, Any], name: str, value: Any) -> None:
        if value is not None:
            data[name] = value
        elif self.config.absent_fields == "null":
            data[name] = None

    def run(
        self,
        rec: RunRecord,
        now: float,
        api_base: str,
        media_base: str,
        listed: bool = False,
        as_created: bool = False,
    ) -> dict[str, Any]:
        """A run object; ``as_created`` shows it as at its creation (the create answer)."""
        if as_created:  # a fresh run is pending even when configured to start at once
            status, progress = "pending", 0
        else:
            status, progress = rec.status(now), rec.progress(now, self.config.progress)
        ended = status in ("completed", "failed")
        id_field = "run_id" if listed else self.config.id_field
        data: dict[str, Any] = {
            id_field: rec.run_id,
            "status": status,
            "progress": progress,
            "created_at": self._ts(rec.created_at),
        }
        cost: float | None = None
        if as_created and self.config.quote_on_create:
            cost = rec.quoted_cost  # a quote: the final cost, on the finished run, may differ
        elif status == "failed":
            cost = 0.0  # refunded
        elif status == "completed" and now >= rec.completed_at + self.config.late_cost_seconds:
            cost = rec.final_cost
        self._optional(data, "charged_cost", cost)
        started = rec.started_at if status != "pending" else None
        self._optional(data, "started_at", None if started is None else self._ts(started))
        self._optional(data, "completed_at", self._ts(rec.completed_at) if ended else None)
        failure = rec.failure if status == "failed" else None
        self._optional(data, "error_code", failure.code if failure else None)
        self._optional(data, "error_message", failure.message if failure else None)
        outputs = self.outputs(rec, media_base) if status == "completed" else None
        self._optional(data, "outputs", outputs)
        data["poll_url"] = f"{api_base}/techniques/{rec.spec.technique_id}/runs/{rec.run_id}"
        if listed:
            data["technique_run_id"] = rec.run_id
            data["project_id"] = PROJECT_ID
            data["workspace_id"] = WORKSPACE_ID
            data["technique"] = {"name": rec.spec.name, "technique_id": rec.spec.technique_id}
        return data

    @staticmethod
    def outputs(rec: RunRecord, media_base: str) -> list[dict[str, str]]:
        result = []
        for out in rec.spec.outputs:
            if out.type == "text":
                url = text_output(rec)
            else:
                url = f"{media_base}/media/{rec.run_id}/{out.id}.{MEDIA_TYPES[out.type][0]}"
            result.append({"output_id": out.id, "type": out.type, "url": url})
        return result

    @staticmethod
    def technique(spec: TechniqueSpec) -> dict[str, Any]:
        return {
            "technique_id": spec.technique_id,
            "name": spec.name,
            "slug": spec.slug,
            "inputs": [
                {"id": i.id, "name": i.name, "type": i.type, "required": i.required}
                for i in spec.inputs
            ],
            "run_cost": spec.run_cost,
        }


def text_output(rec: RunRecord) -> str:
    """A text output's content (it travels in the url field), made from the run's inputs."""
    subject = next((i["value"] for i in rec.inputs if i["type"] == "text"), None)
    if subject is None:
        subject = rec.inputs[0]["value"] if rec.inputs else "nothing"
    return f"Emulated {rec.spec.name.lower()} text for: {subject[:200]}"
