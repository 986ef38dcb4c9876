"""What every transaction handler shares: settings, store, trust, patient states, clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from service.simulator.checks.ebrim import same_patient
from service.simulator.checks.vihf import VihfFindings, check_vihf
from service.simulator.envelope import SoapRequest
from service.simulator.invented_codes import InventedCode
from service.simulator.patients import PatientStates
from service.simulator.problems import Problem, keep
from service.simulator.storage import SimulatorStore
from service.simulator.trust import Trust


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Judge:
    """Thread-safe: handlers run in worker threads."""

    strict: bool
    clock_skew_seconds: int
    max_document_bytes: int
    store: SimulatorStore
    trust: Trust
    patients: PatientStates = field(default_factory=PatientStates)
    clock: Callable[[], dt.datetime] = _utc_now

    def vihf(self, request: SoapRequest, tls_dn: str | None, now: dt.datetime) -> VihfFindings:
        return check_vihf(request.header, trust=self.trust, now=now,
                          clock_skew_seconds=self.clock_skew_seconds, tls_client_dn=tls_dn)

    def keep(self, problems: list[Problem]) -> list[Problem]:
        """The problems that refuse the request (lenient variants logged when not strict)."""
        return keep(problems, strict=self.strict)


def vihf_patient_problem(vihf: VihfFindings, patient_id: str | None) -> list[Problem]:
    """The VIHF resource-id must name the patient of the request (spec §8.4)."""
    if vihf.resource_ins and patient_id and not same_patient(vihf.resource_ins, patient_id):
        return [Problem(InventedCode.VIHF_PATIENT, "VIHF/resource-id",
                        "Le patient du VIHF n'est pas celui de la requête.")]
    return []
