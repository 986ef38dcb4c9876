"""The DMP simulator: the strict judge of everything the bridge sends (DESIGN.md §3)."""

from service.simulator.config import SimulatorConfig
from service.simulator.faults import FaultInjector, InjectedFault
from service.simulator.server import RunningSimulator, run_simulator_forever, start_simulator
from service.simulator.storage import RequestRecord, SimulatorStore, StoredDocument

__all__ = [
    "FaultInjector",
    "InjectedFault",
    "RequestRecord",
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorStore",
    "StoredDocument",
    "run_simulator_forever",
    "start_simulator",
]
