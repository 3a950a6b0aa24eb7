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
    again = (OUT / "state").is_dir()
    # Every run completes at its quote: with the emulator's realistic 3 % of failed runs, one
    # demo in four would end with a failed row (exit 1) and its rerun would not show a resume.
    emulator = subprocess.Popen(
        [sys.executable, "-m", "batchrun.emulator", "--port", "0", "--run-seconds", "1.5",
         "--fail-rate", "0", "--cost-drift-rate", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = emulator.stdout.readline() if emulator.stdout else ""
        base_url = line.strip().rsplit(" ", 1)[-1]
        print(f"demo: {line.strip()}")
        if again:
            print(f"demo: {OUT / 'state'} holds the batches of an earlier `make demo`: they "
                  "resume; no row done is sent again, no file fetched is fetched again")  # fmt: skip
        env = {**os.environ, "FLORA_API_KEY": "demo-key", "FLORA_BASE_URL": base_url}
        code = 0
        for manifest, technique, extra in (
            (samples / "prompts.csv", "text-to-image", ["--pass-through", "campaign"]),
            (samples / "prompts.jsonl", "text-to-image", []),
            (samples / "photos.csv", "image-to-video", []),  # local photos, uploaded as assets
        ):
            report = OUT / f"{manifest.stem}-{manifest.suffix[1:]}"
            cmd = [
                sys.executable, "-m", "batchrun", "run", str(manifest),
                "--technique", technique, "--state-dir", str(OUT / "state"),
                "--batch", report.name, "--report", f"{report}.parquet", "--report", f"{report}.csv",
                "--report", f"{report}.html",
                "--download", str(OUT / "files"), *extra,
            ]  # fmt: skip
            print(f"\ndemo: batchrun run {manifest.relative_to(ROOT)} --technique {technique} ...")
            sys.stdout.flush()  # our lines before the command's, also when piped
            code = max(code, subprocess.call(cmd, env=env))
            print(f"demo: gallery: {(OUT / f'{report.name}.html').resolve()}")
        print(f"\ndemo: reports, galleries and files are in {OUT.resolve()}")
        if not again:
            print("demo: run `make demo` again to see a resume: nothing sent, nothing fetched")
        else:
            print(f"demo: delete {OUT} to start from scratch")
        return code
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    sys.exit(main())
