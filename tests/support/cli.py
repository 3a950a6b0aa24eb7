"""Run the real `batchrun` CLI as a separate process, the way a user or cron does."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

API_KEY = "sk-test-3f9a1c7e5b"


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLORA_", "BATCHRUN_"))}
    env["FLORA_API_KEY"] = API_KEY
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def batchrun_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "batchrun", *map(str, args)]


def run_cli(
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        batchrun_cmd(*args),
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    rows = list(rows)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def prompts(n: int, fail_every: int = 0) -> list[dict[str, str]]:
    return [
        {
            "id": f"row-{i:05d}",
            "prompt": f"picture {i}" + (" FAIL" if fail_every and i % fail_every == 0 else ""),
        }
        for i in range(n)
    ]
