"""The identity gate: nothing reaches the DMP for a patient whose identity is not qualified,
or who opposed the feeding of their record (DESIGN.md §5, spec/matrix-and-intake.md A.4).

Every refusal is a French sentence that tells the professional what to do; the job waits in
`held` — it is never dropped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bridge.domain import IdentityStatus, Patient
from bridge.errors import IdentityRejected

CONSENT_VALIDITY = dt.timedelta(days=365)  # consultation consent lasts 12 months


class Target(StrEnum):
    """Where documents go: test identities are refused by the real DMP."""

    SIMULATOR = "simulateur"  # the embedded simulator: test and demo INS are welcome
    PRODUCTION = "production"  # the real DMP: only real INS-NIR / INS-NIA


_STATUS_ADVICE = {
    IdentityStatus.PROV: (
        "L'identité du patient est provisoire (statut PROV) : aucun document ne peut partir au "
        "DMP. Récupérez son INS par le téléservice INSi et vérifiez une pièce d'identité, puis "
        "passez l'identité en « qualifiée » dans le logiciel et réexportez le document."
    ),
    IdentityStatus.RECUP: (
        "L'INS du patient a été récupéré par INSi mais son identité n'a pas été vérifiée avec une "
        "pièce d'identité (statut RECUP). Vérifiez une pièce d'identité, passez l'identité en "
        "« qualifiée » dans le logiciel, puis réexportez le document."
    ),
    IdentityStatus.VALI: (
        "L'identité du patient a été vérifiée avec une pièce d'identité mais son INS n'a pas été "
        "confirmé par le téléservice INSi (statut VALI). Appelez INSi depuis le logiciel, passez "
        "l'identité en « qualifiée », puis réexportez le document."
    ),
}


def check_identity(patient: Patient, *, target: Target) -> None:
    """Raise IdentityRejected (the job is held) unless this identity may be sent to `target`."""
    if patient.ins.oid.is_test and target is Target.PRODUCTION:
        raise IdentityRejected(
            "Cet INS est un INS de test (OID 1.2.250.1.213.1.4.10 ou .11) : il ne peut pas être "
            "envoyé au vrai DMP. Vérifiez que le logiciel n'est pas resté en mode démonstration.",
            code="INS_TEST_IN_PRODUCTION", event="ins_test_oid_in_production",
        )
    advice = _STATUS_ADVICE.get(patient.identity_status)
    if advice is not None:
        raise IdentityRejected(advice, code=f"IDENTITY_{patient.identity_status.value}",
                               event="identity_not_qualified")


@dataclass(frozen=True)
class PatientRecord:
    """What the practice told us about a patient's DMP choices (the patient registry)."""

    ins: str  # matricule
    feeding_opposition: bool  # the patient opposed the feeding of their DMP (motif légitime)
    opposition_at: dt.datetime | None
    consultation_consent_at: dt.date | None  # date the patient consented to consultation

    def consent_valid_on(self, day: dt.date) -> bool:
        """Consultation consent is valid 12 months from the day it was given."""
        if self.consultation_consent_at is None:
            return False
        return day < self.consultation_consent_at + CONSENT_VALIDITY

    def consent_expires_on(self) -> dt.date | None:
        if self.consultation_consent_at is None:
            return None
        return self.consultation_consent_at + CONSENT_VALIDITY


def check_not_opposed(record: PatientRecord | None) -> None:
    """Raise IdentityRejected (held) when the patient opposed the feeding of their DMP."""
    if record is not None and record.feeding_opposition:
        raise IdentityRejected(
            "Le patient s'est opposé à l'alimentation de son DMP : ce document ne sera pas envoyé. "
            "S'il revient sur son opposition, enregistrez-le dans le logiciel et réexportez le "
            "document ; sinon, annulez l'envoi (dmp-bridge cancel).",
            code="PATIENT_OPPOSED", event="patient_opposed_feeding",
        )


class PatientRegistry(Protocol):
    """Where the practice's record of each patient's DMP choices is kept."""

    def get(self, ins: str) -> PatientRecord | None: ...

    def record(self, ins: str, *, now: dt.datetime, feeding_opposition: bool | None = None,
               consultation_consent_at: dt.date | None = None) -> PatientRecord: ...
