"""The DMP simulator: the strict judge of everything the bridge sends (DESIGN.md §3).

The wire contract it serves (ITI-41 with RPLC, ITI-18, ITI-57, TD0.2, patient states, admin API)
is WIRE_CONTRACT.md; every code it can answer is in ERRORS.md.
"""

from service.simulator.config import SimulatorConfig
from service.simulator.faults import FaultInjector, FaultKind, InjectedFault
from service.simulator.patients import PatientState
from service.simulator.server import RunningSimulator, run_simulator_forever, start_simulator
from service.simulator.storage import RequestRecord, SimulatorStore, StoredDocument

__all__ = [
    "FaultInjector",
    "FaultKind",
    "InjectedFault",
    "PatientState",
    "RequestRecord",
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorStore",
    "StoredDocument",
    "run_simulator_forever",
    "start_simulator",
]
