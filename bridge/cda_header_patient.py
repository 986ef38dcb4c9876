"""The patient of a received CDA: the INS and the identity traits read from
recordTarget/patientRole (the identity status is not in a CDA; see `bridge.cda_header`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bridge.cda_header_xml import attr, find, find_all, text_of
from bridge.domain import IdentityStatus, Ins, InsOid, Patient, Sex
from bridge.errors import IdentityRejected
from bridge.ins import parse_ins

_INS_ROOTS = frozenset(oid.value for oid in InsOid)


@dataclass(frozen=True)
class PatientTraits:
    """The INS and the identity traits read from recordTarget; the status is not in a CDA."""

    ins: Ins
    birth_family_name: str
    given_names: tuple[str, ...]
    birth_date: dt.date
    sex: Sex
    used_family_name: str | None = None
    birthplace_code: str | None = None

    def with_status(self, status: IdentityStatus) -> Patient:
        """The domain patient, once the caller knows the identity status from its référentiel."""
        return Patient(
            ins=self.ins,
            identity_status=status,
            birth_family_name=self.birth_family_name,
            given_names=self.given_names,
            birth_date=self.birth_date,
            sex=self.sex,
            used_family_name=self.used_family_name,
            birthplace_code=self.birthplace_code,
        )



def _names(person: Any, tag: str) -> list[tuple[str | None, str]]:
    """(qualifier, text) of every `name/<tag>` of a person."""
    found = []
    for element in find_all(person, f"name/{tag}"):
        text = text_of(element)
        if text:
            found.append((attr(element, "qualifier"), text))
    return found


def _traits(ins: Ins, person: Any, problems: list[str]) -> PatientTraits | None:
    families, givens = _names(person, "family"), _names(person, "given")
    birth_family = next((t for q, t in families if q == "BR"), None)
    used_family = next((t for q, t in families if q == "CL"), None)
    listed = " ".join(t for q, t in givens if q is None).split()
    first_br = [t for q, t in givens if q == "BR"]
    given_names = tuple(listed or " ".join(first_br).split())
    sex_code = attr(find(person, "administrativeGenderCode"), "code")
    sex = Sex(sex_code) if sex_code in {s.value for s in Sex} else None
    birth = attr(find(person, "birthTime"), "value")
    try:
        birth_date = dt.datetime.strptime(birth[:8], "%Y%m%d").date() if birth else None
    except ValueError:
        birth_date = None
    birthplace = text_of(find(person, "birthplace/place/addr/county"))
    missing = [
        label
        for label, absent in (
            ("nom de naissance (family qualifier BR)", birth_family is None),
            ("premier prénom de naissance (given qualifier BR)", not first_br),
            ("prénoms de naissance (given sans qualifier)", not listed),
            ("sexe (administrativeGenderCode F, M ou U)", sex is None),
            ("date de naissance (birthTime AAAAMMJJ)", birth_date is None),
            ("code du lieu de naissance (birthplace/place/addr/county)", birthplace is None),
        )
        if absent
    ]
    if missing:
        problems.append("Traits d'identité INS absents ou invalides : " + ", ".join(missing) + ".")
    if birth_family is None or not given_names or sex is None or birth_date is None:
        return None
    return PatientTraits(
        ins=ins,
        birth_family_name=birth_family,
        given_names=given_names,
        birth_date=birth_date,
        sex=sex,
        used_family_name=used_family,
        birthplace_code=birthplace,
    )


def read_patient(root: Any, problems: list[str]) -> tuple[Ins | None, PatientTraits | None]:
    role = find(root, "recordTarget/patientRole")
    ins_id = next((i for i in find_all(role, "id") if attr(i, "root") in _INS_ROOTS), None)
    if ins_id is None:
        problems.append(
            "INS du patient absent : recordTarget/patientRole/id doit porter le matricule INS "
            "avec l'OID 1.2.250.1.213.1.4.8 (INS-NIR) ou .9 (INS-NIA) (.10/.11 en test)."
        )
        return None, None
    try:
        ins = parse_ins(attr(ins_id, "extension") or "", attr(ins_id, "root") or "")
    except IdentityRejected as exc:
        problems.append(exc.message_fr)
        return None, None
    return ins, _traits(ins, find(role, "patient"), problems)
