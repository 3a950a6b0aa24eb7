"""A local FLORA-compatible server: the reference's endpoints, faithful answers, switchable faults.

For tests, demos and benchmarks; it shows how a client copes, not what the real API will say.
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
