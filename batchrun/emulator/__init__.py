"""A local FLORA-compatible server: the reference's endpoints, faithful answers, switchable faults.

By default it behaves like FLORA: runs queue and then take varying (lognormal) times, a few percent
fail with FLORA's error codes by tier, and final costs may differ from the create's quote; all of it
seeded. For tests, demos and benchmarks; it shows how a client copes, not what the real API will say.
"""

from .app import EmulatorApp
from .catalogue import CATALOGUE, TechniqueSpec
from .config import EmulatorConfig
from .faults import ENDPOINTS, Faults
from .server import EmulatorThread, serve
from .state import Store

__all__ = [
    "CATALOGUE",
    "ENDPOINTS",
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorThread",
    "Faults",
    "Store",
    "TechniqueSpec",
    "serve",
]
