# The wire contract for ITI-57, RPLC, TD0.2, ITI-18 details, patient states and the admin API (the "{WIRE}" of your brief) is in service/simulator/WIRE_CONTRACT.md.
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
