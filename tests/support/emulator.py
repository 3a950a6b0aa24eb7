"""The FLORA emulator as a separate process on a free loopback port, for end-to-end tests.

    with EmulatorProcess("--run-seconds", "0.3", "--drop", "0.05") as emu:
        run_the_cli("--base-url", emu.base_url)
        assert max(emu.ledger()["creates_by_key"].values()) == 1

or as a fixture:

    @pytest.fixture
    def emu() -> Iterator[EmulatorProcess]:
        yield from emulator_fixture("--run-seconds", "0.3")

Run times vary as the emulator's defaults make them (pass "--run-spread", "0" for exact ones),
but random run failures and cost drift are pinned off, so a test that expects every row to
complete at its quote can rely on it; FAIL triggers in inputs still work. ``fail_rate=None`` or
``cost_drift_rate=None`` keeps the emulator's realistic default, a number pins another value,
and the same flag among ``args`` wins too (it comes later on the command line).

For the emulator in-process, ``steady_config(...)`` builds an ``EmulatorConfig`` with the same
pins.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from batchrun.emulator.config import EmulatorConfig
from batchrun.emulator.faults import Faults
from batchrun.emulator.panel import ControlPanel

ROOT = Path(__file__).resolve().parents[2]
READY = "FLORA emulator listening on "


class EmulatorError(RuntimeError):
    pass


class EmulatorProcess(ControlPanel):
    """``python -m batchrun.emulator --port 0 ARGS`` in its own process; stopped on exit."""

    def __init__(
        self,
        *args: str,
        fail_rate: float | None = 0.0,
        cost_drift_rate: float | None = 0.0,
        startup_timeout: float = 20.0,
    ) -> None:
        pins: list[str] = []
        if fail_rate is not None:
            pins += ["--fail-rate", repr(float(fail_rate))]
        if cost_drift_rate is not None:
            pins += ["--cost-drift-rate", repr(float(cost_drift_rate))]
        # Pins first: for a flag given twice the emulator takes the last, so args override them.
        self.args = ("--port", "0", *pins, *args)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        # stderr goes to a file: a pipe nobody reads would block the server once it filled up.
        # It lives as long as this object and is closed on exit, so no ``with`` fits.
        self._stderr = tempfile.TemporaryFile(mode="w+", prefix="emulator-stderr-")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchrun.emulator", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=ROOT,
        )
        line = self._first_line(startup_timeout)
        if not line.startswith(READY):
            self.stop()
            message = (
                f"emulator did not start within {startup_timeout:g} s "
                f"(exit code {self.proc.returncode}); stdout: {line!r}; "
                f"stderr:\n{self.stderr()[-4000:]}"
            )
            self._stderr.close()
            raise EmulatorError(message)
        self.base_url = line.removeprefix(READY).strip()  # http://127.0.0.1:PORT/api/v1
        self.root_url = self.base_url.rsplit("/api/", 1)[0]
        self.port = int(self.root_url.rsplit(":", 1)[1])

    def _first_line(self, timeout: float) -> str:
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def read() -> None:
            lines.put(stdout.readline())  # "" when the process ends first

        threading.Thread(target=read, daemon=True).start()
        try:
            return lines.get(timeout=timeout)
        except queue.Empty:
            return ""

    def stderr(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    # -- lifetime ------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.close_panel()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._stderr.close()


def emulator_fixture(
    *args: str, fail_rate: float | None = 0.0, cost_drift_rate: float | None = 0.0
) -> Iterator[EmulatorProcess]:
    """For a pytest fixture: ``yield from emulator_fixture("--run-seconds", "0.3")``."""
    with EmulatorProcess(*args, fail_rate=fail_rate, cost_drift_rate=cost_drift_rate) as emu:
        yield emu


def steady_config(faults: Faults | None = None, **settings: Any) -> EmulatorConfig:
    """An in-process ``EmulatorConfig`` pinned like ``EmulatorProcess``: realistic run times, no
    random run failures, no cost drift. ``settings`` (and ``faults``) override the pins."""
    settings.setdefault("cost_drift_rate", 0.0)
    return EmulatorConfig(faults=faults or Faults(fail_rate=0.0), **settings)
