from collections.abc import Iterator

import pytest

from tests.support.emulator import EmulatorProcess


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    """A fresh emulator process with quick runs."""
    with EmulatorProcess("--run-seconds", "0.3") as emu:
        yield emu
