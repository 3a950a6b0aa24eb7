"""`make demo`: start the emulator, run the sample manifests through the real CLI, show the report.

Needs nothing but `make install`: the emulator stands in for FLORA on a free loopback port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("demo-output")


def main() -> int:
    samples = ROOT / "sample_manifests"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "batchrun.emulator", "--port", "0", "--run-seconds", "1.5"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = emulator.stdout.readline() if emulator.stdout else ""
        base_url = line.strip().rsplit(" ", 1)[-1]
        print(f"demo: {line.strip()}")
        env = {**os.environ, "FLORA_API_KEY": "demo-key", "FLORA_BASE_URL": base_url}
        code = 0
        for manifest, extra in (
            (samples / "prompts.csv", ["--pass-through", "campaign"]),
            (samples / "prompts.jsonl", []),
        ):
            report = OUT / f"{manifest.stem}-{manifest.suffix[1:]}"
            cmd = [
                sys.executable, "-m", "batchrun", "run", str(manifest),
                "--technique", "text-to-image", "--state-dir", str(OUT / "state"),
                "--batch", report.name, "--report", f"{report}.parquet", "--report", f"{report}.csv",
                "--download", str(OUT / "files"), *extra,
            ]  # fmt: skip
            print(
                f"\ndemo: batchrun run {manifest.relative_to(ROOT)} --technique text-to-image ..."
            )
            code = max(code, subprocess.call(cmd, env=env))
        print(f"\ndemo: reports and files are in {OUT.resolve()}; run it again to see a resume "
              "send nothing")  # fmt: skip
        return code
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    sys.exit(main())
