"""A local FLORA-compatible server: the reference's endpoints, faithful answers, switchable
faults. For tests, demos and benchmarks; never a stand-in for checking against the real API."""

from .app import build_app
from .config import EmulatorConfig, Faults
from .server import EmulatorThread, serve
from .state import Store

__all__ = ["EmulatorConfig", "EmulatorThread", "Faults", "Store", "build_app", "serve"]
