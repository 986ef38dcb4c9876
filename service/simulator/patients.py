"""Patient states per INS (spec §1.3, §8.9), set through the admin API; default: DMP open and
the caller authorised. Kept in memory: a restart or « réinitialiser » forgets them.

| state                  | ITI-41 / ITI-57          | ITI-18                                   |
|------------------------|--------------------------|------------------------------------------|
| ouvert (default)       | accepted                 | accepted                                 |
| sans_dmp               | XDSUnknownPatientId      | XDSUnknownPatientId                      |
| ferme                  | DMP_DOSSIER_FERME        | DMP_DOSSIER_FERME                        |
| opposition             | DMP_OPPOSITION_PATIENT   | DMP_OPPOSITION_PATIENT                   |
| ps_bloque              | DMP_PS_BLOQUE            | DMP_PS_BLOQUE                            |
| autorisation_absente   | accepted (feeding needs  | FindDocuments: DMP_AUTORISATION_ABSENTE; |
|                        | no authorisation)        | GetDocuments: only the caller's own      |

"ps_bloque" blocks every professional for that patient (the simulator has one caller in view).
In centre_15 mode the authorisation is not checked (spec §1.3); a blocked PS stays blocked.
"""

from __future__ import annotations

import threading
from enum import StrEnum

from service.simulator.invented_codes import InventedCode
from service.simulator.problems import IheCode, Problem
from service.simulator.xds_types import parse_cx


class PatientState(StrEnum):
    """What the DMP knows of a patient (values are the admin API's `etat`)."""

    OUVERT = "ouvert"  # DMP open, caller authorised (default)
    SANS_DMP = "sans_dmp"  # no DMP for this INS
    FERME = "ferme"  # DMP closed
    OPPOSITION = "opposition"  # the patient opposed feeding and access
    PS_BLOQUE = "ps_bloque"  # the professional was blocked by the patient
    AUTORISATION_ABSENTE = "autorisation_absente"  # caller has no access authorisation


class Operation(StrEnum):
    """What the caller is doing, for the state rules."""

    FEED = "alimentation"  # ITI-41, ITI-57
    FIND = "recherche"  # ITI-18 FindDocuments
    GET = "lecture"  # ITI-18 GetDocuments


_REFUSALS = {
    PatientState.SANS_DMP: (IheCode.UNKNOWN_PATIENT_ID, "Ce patient n'a pas de DMP."),
    PatientState.FERME: (InventedCode.DOSSIER_FERME, "Le DMP de ce patient est fermé."),
    PatientState.OPPOSITION: (InventedCode.OPPOSITION_PATIENT,
                              "Le patient s'est opposé à l'alimentation et à l'accès à son DMP."),
    PatientState.PS_BLOQUE: (InventedCode.PS_BLOQUE,
                             "Le patient a bloqué l'accès de ce professionnel à son DMP."),
}


def matricule(ins: str) -> str:
    """The INS matricule from a bare matricule or a CX."""
    cx = parse_cx(ins) if "^" in ins else None
    return cx.id if cx is not None else ins.strip()


def state_problem(state: PatientState, operation: Operation, *, own_documents: bool = False,
                  purpose: str | None = None) -> Problem | None:
    """The refusal a patient state causes for this operation, or None."""
    refusal = _REFUSALS.get(state)
    if refusal is not None:
        return Problem(refusal[0], "patient", refusal[1])
    if (state is PatientState.AUTORISATION_ABSENTE and operation is not Operation.FEED
            and purpose != "centre_15" and not (operation is Operation.GET and own_documents)):
        return Problem(InventedCode.AUTORISATION_ABSENTE, "patient",
                       "Le professionnel n'a pas d'autorisation d'accès à ce DMP.")
    return None


class PatientStates:
    """Thread-safe map INS matricule → state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, PatientState] = {}

    def set(self, ins: str, state: PatientState) -> None:
        with self._lock:
            self._states[matricule(ins)] = state

    def get(self, ins: str | None) -> PatientState:
        if not ins:
            return PatientState.OUVERT
        with self._lock:
            return self._states.get(matricule(ins), PatientState.OUVERT)

    def reset(self) -> None:
        with self._lock:
            self._states.clear()
