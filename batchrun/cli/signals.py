"""Ctrl-C and SIGTERM for the command: the first stops sending and lets the batch end cleanly,
a second leaves at once. Only the command installs handlers, and it restores them on exit:
the Python API never touches a process's signals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator

from ..engine.context import Emit, Event, Stop
from ..errors import EXIT_RESUMABLE


@contextlib.contextmanager
def stopping_on_signals(stop: Stop, emit: Emit) -> Iterator[None]:
    loop = asyncio.get_running_loop()

    def handler(signame: str) -> None:
        if stop.stopping:
            sys.stderr.write("batchrun: second interrupt, leaving now; rerun to resume\n")
            sys.stderr.flush()
            os._exit(EXIT_RESUMABLE)  # the journal is consistent at every commit
        stop.request(f"interrupted ({signame})")
        emit(Event("stopping", {"reason": f"{signame}: finishing the sends in progress"}))

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler, sig.name)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
