"""The patient (PID) and the author (PRT SB) of a message, as sidecar dictionaries.

The message is read first; an embedded CDA only fills what the message lacks (spec B.1.4: PID-3
must equal the CDA's recordTarget id, so a different INS is refused with 904).

Patient: the INS is the PID-3 repetition typed `INS` (or carrying an INS OID in CX-4.2); PID-5
typed `L` gives the birth name and birth given names (XPN-3, a space-separated list, else XPN-2),
typed `D` the used name; PID-7 the birth date, PID-8 the sex, the PID-11 repetition typed `BDL`
the INSEE birthplace code (XAD-9), PID-32 the identity status (PROV/RECUP/VALI/QUAL). The
status is never guessed (same rule as bridge.cda_header): without PID-32 the message is refused.

Author: the PRT whose PRT-4 is `SB` (sender): PRT-5 = PS_IdNat (`8` + RPPS) or RPPS, names;
PRT-6 = profession or specialty when given (`60`, `G15_60`, `G15_10/SM26`); PRT-8 = structure:
XON-1 name, XON-10 id typed by XON-7 (`IDNST` as is; FINESS `FINEG`/`FINEJ` → `1` + FINESS,
`SIREN` → `2` + SIREN, `SIRET` → `3` + SIRET: the Struct_IdNat prefixes). Without PRT SB, TXA-5
then OBR-16 (XCN) give the person.

The author's activity sector (TRE_R02: SA07 cabinet individuel, SA08 cabinet de groupe, SA33
officine…) has no field in HL7 v2: it comes from an embedded CDA's author when there is one,
else from the receiver's configuration (`sector`, checked with `sector_problem`). It decides
the healthcareFacilityTypeCode and the contentTypeCode, so a pharmacy must say SA33.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.cda_header import CdaHeader
from bridge.domain import OID_SECTOR, InsOid
from bridge.errors import IdentityRejected
from bridge.hl7v2.errors import AppCode, ErrorCode, Location, rejected
from bridge.hl7v2.segments import Delimiters, Segment, comp, repetitions, value
from bridge.ins import parse_ins
from bridge.sidecar import AuthorIn
from mappings.valuesets import VS, load_value_set

_INS_OIDS = frozenset(oid.value for oid in InsOid)
_STATUSES = ("PROV", "RECUP", "VALI", "QUAL")
_SEXES = {"F": "F", "M": "M", "U": "U", "A": "U", "O": "U", "N": "U"}
_RPPS = re.compile(r"^8?([0-9]{11})$")
_PROFESSION = re.compile(r"^(?:G15_)?([0-9]{2})(?:/.+)?$")
# Struct_IdNat = prefix + national id, for an id of the usual length given without its prefix.
_STRUCT_PREFIX = {"FINEG": ("1", 9), "FINEJ": ("1", 9), "FINESS": ("1", 9), "SIREN": ("2", 9),
                  "SIRET": ("3", 14)}
# The sidecar's own default sector (cabinet individuel): HL7 and sidecar agree without config.
DEFAULT_SECTOR: str = AuthorIn.model_fields["sector"].default


def sector_problem(code: str) -> str | None:
    """Why `code` cannot be an author's activity sector (French, for the configuration), or
    None. The same check as a sidecar's `author.sector` (JDV_J02, system TRE_R02)."""
    if load_value_set(VS.FACILITY_TYPE).get(code, OID_SECTOR) is not None:
        return None
    return (f"secteur d'activité « {code} » inconnu : attendu un code SAxx du jeu de valeurs "
            "JDV_J02 (par exemple SA07 cabinet individuel, SA08 cabinet de groupe, SA33 "
            "officine)")


# ------------------------------------------------------------------------------------ patient

def _ins_from_pid(pid: Segment, d: Delimiters) -> tuple[str, str] | None:
    for rep in repetitions(pid.field(3), d):
        oid = comp(rep, 4, d, sub=2)
        if comp(rep, 5, d).upper() == "INS" or oid in _INS_OIDS:
            return comp(rep, 1, d), oid
    return None


def _checked_ins(matricule: str, oid: str, where: Location) -> tuple[str, str]:
    try:
        ins = parse_ins(matricule, oid)
    except IdentityRejected as exc:
        error = ErrorCode.TABLE_VALUE if exc.code == "INS_OID" else ErrorCode.DATA_TYPE
        raise rejected(exc.message_fr, error, where) from None
    return ins.matricule, ins.oid.value


def read_ins(pid: Segment, d: Delimiters) -> tuple[str, str] | None:
    """The checked (matricule, OID) of the PID-3 INS repetition; None when there is none;
    HL7Rejected (102/103) when it is malformed."""
    found = _ins_from_pid(pid, d)
    return None if found is None else _checked_ins(*found, where=pid.at(3))


def _status(pid: Segment, d: Delimiters) -> str:
    values = [comp(rep, 1, d).upper() for rep in repetitions(pid.field(32), d)]
    if not values:
        raise rejected(
            "Le statut de l'identité du patient (PID-32 : PROV, RECUP, VALI ou QUAL) est "
            "absent : sans lui, l'identité ne peut pas être vérifiée.",
            ErrorCode.REQUIRED_FIELD, pid.at(32))
    for status in values:
        if status in _STATUSES:
            return status
    raise rejected(
        f"Statut d'identité « {values[0]} » inconnu (PID-32) : attendu PROV, RECUP, VALI ou "
        "QUAL.", ErrorCode.TABLE_VALUE, pid.at(32))


def _names(pid: Segment, d: Delimiters) -> tuple[str, list[str], str | None]:
    reps = repetitions(pid.field(5), d)
    typed = {comp(r, 7, d).upper(): r for r in reversed(reps)}
    birth = typed.get("L") or (reps[0] if reps and not comp(reps[0], 7, d) else None)
    family, given = "", []
    if birth is not None:
        family = comp(birth, 1, d)
        first, listed = comp(birth, 2, d), comp(birth, 3, d).split()
        given = listed if listed else ([first] if first else [])
        if first and given and given[0] != first:
            given.insert(0, first)
    used = comp(typed["D"], 1, d) if "D" in typed else None
    return family, given, used or None


def _birth_date(pid: Segment, d: Delimiters) -> str | None:
    raw = value(pid, 7, d)
    if not raw:
        return None
    if not re.match(r"^[0-9]{8}", raw):
        raise rejected("La date de naissance (PID-7) doit être au format AAAAMMJJ.",
                       ErrorCode.DATA_TYPE, pid.at(7))
    return f"{raw[0:4]}-{raw[4:6]}-{raw[6:8]}"


def _birthplace(pid: Segment, d: Delimiters) -> str | None:
    for rep in repetitions(pid.field(11), d):
        if comp(rep, 7, d).upper() == "BDL" and comp(rep, 9, d):
            return comp(rep, 9, d)
    return None


def read_patient(pid: Segment, d: Delimiters, cda: CdaHeader | None) -> dict[str, Any]:
    """The sidecar's `patient` object; HL7Rejected (101/102/103/207+903/904/905) otherwise."""
    if not repetitions(pid.field(3), d):
        raise rejected("Les identifiants du patient (PID-3) sont absents.",
                       ErrorCode.REQUIRED_FIELD, pid.at(3))
    traits = cda.patient_traits if cda is not None else None
    found = _ins_from_pid(pid, d)
    if found is not None:
        matricule, oid = _checked_ins(*found, where=pid.at(3))
        if cda is not None and cda.ins is not None and (
                cda.ins.matricule, cda.ins.oid.value) != (matricule, oid):
            raise rejected(
                "L'INS du patient en PID-3 n'est pas celui du document CDA (recordTarget) : "
                "le document appartient peut-être à un autre patient.",
                ErrorCode.APPLICATION, pid.at(3), app_code=AppCode.INS_MISMATCH)
    elif cda is not None and cda.ins is not None:
        matricule, oid = cda.ins.matricule, cda.ins.oid.value
    else:
        raise rejected(
            "L'INS du patient est absent (PID-3, identifiant de type INS) : récupérez-le par le "
            "téléservice INSi avant d'envoyer le document.",
            ErrorCode.APPLICATION, pid.at(3), app_code=AppCode.INS_MISSING)
    status = _status(pid, d)
    family, given, used = _names(pid, d)
    sex = _SEXES.get(value(pid, 8, d).upper())
    patient: dict[str, Any] = {
        "ins": matricule, "ins_oid": oid, "identity_status": status,
        "birth_family_name": family or (traits.birth_family_name if traits else ""),
        "given_names": given or (list(traits.given_names) if traits else []),
        "used_family_name": used or (traits.used_family_name if traits else None),
        "birth_date": _birth_date(pid, d) or (traits.birth_date.isoformat() if traits else None),
        "sex": sex or (traits.sex.value if traits else None),
        "birthplace_code": _birthplace(pid, d) or (traits.birthplace_code if traits else None),
    }
    labels = {"birth_family_name": "nom de naissance (PID-5)", "given_names": "prénoms (PID-5)",
              "birth_date": "date de naissance (PID-7)", "sex": "sexe (PID-8)",
              "birthplace_code": "lieu de naissance (PID-11 de type BDL)"}
    missing = [label for key, label in labels.items() if not patient[key]]
    if missing:
        raise rejected(
            "L'identité INS du patient est incomplète, il manque : " + ", ".join(missing)
            + ". Tous les traits INS sont nécessaires pour l'envoi au DMP.",
            ErrorCode.APPLICATION, pid.at(5), app_code=AppCode.INS_INCOMPLETE)
    return patient


# ------------------------------------------------------------------------------------- author

def _sender(segments: list[Segment], d: Delimiters) -> Segment | None:
    for seg in segments:
        if seg.name == "PRT" and value(seg, 4, d).upper() == "SB":
            return seg
    return None


def _person(seg: Segment, n: int, d: Delimiters) -> dict[str, Any]:
    reps = repetitions(seg.field(n), d)
    if not reps:
        return {}
    rep = reps[0]
    ps_id = comp(rep, 1, d)
    match = _RPPS.match(ps_id)
    if ps_id and match is None:
        raise rejected(
            "L'auteur doit être identifié par son numéro RPPS (11 chiffres, ou « 8 » suivi des "
            f"11 chiffres en identifiant national) : « {ps_id} » ne convient pas.",
            ErrorCode.DATA_TYPE, seg.at(n, 1))
    return {"rpps": match.group(1) if match else None, "family_name": comp(rep, 2, d),
            "given_name": comp(rep, 3, d)}


def _profession(prt: Segment, d: Delimiters) -> tuple[str | None, str | None]:
    code = value(prt, 6, d)
    if not code:
        return None, None
    match = _PROFESSION.match(code)
    if match is None:
        raise rejected(
            f"Profession ou spécialité « {code} » non reconnue (PRT-6) : attendu un code "
            "TRE_G15 (60 infirmier…) ou JDV_J01 (G15_10/SM26…).",
            ErrorCode.TABLE_VALUE, prt.at(6))
    return match.group(1), code if code.startswith("G15_") else None


def _structure(prt: Segment, d: Delimiters) -> tuple[str | None, str | None]:
    reps = repetitions(prt.field(8), d)
    if not reps:
        return None, None
    rep = reps[0]
    name, kind, ident = comp(rep, 1, d), comp(rep, 7, d).upper(), comp(rep, 10, d).upper()
    prefix, length = _STRUCT_PREFIX.get(kind, ("", 0))
    structure_id = prefix + ident if len(ident) == length else ident
    return (structure_id or None), (name or None)


def _at(prt: Segment | None, n: int) -> Location:
    return prt.at(n) if prt is not None else Location("PRT", 1, n)


def read_author(segments: list[Segment], d: Delimiters, cda: CdaHeader | None, *,
                sector: str = DEFAULT_SECTOR) -> dict[str, Any]:
    """The sidecar's `author` object; HL7Rejected (101/102/103) when a part is missing.

    `sector` is the author's activity sector when the embedded CDA does not give one (HL7 v2
    has no field for it): the receiving channel's configured value."""
    prt = _sender(segments, d)
    by_name = {s.name: s for s in reversed(segments)}
    person: dict[str, Any] = {}
    where = Location("PRT")
    profession = specialty = structure_id = structure_name = None
    if prt is not None:
        person, where = _person(prt, 5, d), prt.at(5)
        profession, specialty = _profession(prt, d)
        structure_id, structure_name = _structure(prt, d)
    for name, field_number in (("TXA", 5), ("OBR", 16)):
        if not person.get("rpps") and name in by_name:
            candidate = _person(by_name[name], field_number, d)
            if candidate.get("rpps"):
                person, where = candidate, by_name[name].at(field_number)
    known = cda.author if cda is not None else None
    author: dict[str, Any] = {
        "rpps": person.get("rpps") or (known.rpps if known else None),
        "family_name": person.get("family_name") or (known.family_name if known else None),
        "given_name": person.get("given_name") or (known.given_name if known else None),
        "profession": profession or (known.profession_code if known else None),
        "specialty": specialty or (known.specialty_code if known else None),
        "structure_id": structure_id or (known.structure_id if known else None),
        "structure_name": structure_name or (known.structure_name if known else None),
    }
    author["sector"] = known.sector_code if known is not None and known.sector_code else sector
    required = (("rpps", "le RPPS de l'auteur (PRT-5.1)", where),
                ("family_name", "le nom de l'auteur (PRT-5.2)", where),
                ("given_name", "le prénom de l'auteur (PRT-5.3)", where),
                ("profession", "la profession de l'auteur (PRT-6)", _at(prt, 6)),
                ("structure_id", "l'identifiant de sa structure (PRT-8.10)", _at(prt, 8)),
                ("structure_name", "le nom de sa structure (PRT-8.1)", _at(prt, 8)))
    for key, label, location in required:
        if not author[key]:
            raise rejected(
                f"L'expéditeur du document (segment PRT de type SB) est incomplet : il manque "
                f"{label}.", ErrorCode.REQUIRED_FIELD, location)
    if not author["specialty"]:
        del author["specialty"]
    return author
