"""HL7 v2 data types inside XDS slots (spec §3.4): CX (patient ids), XCN (authorPerson), XON
(authorInstitution). Parsed here, independently of the bridge's writers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.simulator.namespaces import OID_PS_IDNAT, OID_STRUCT_IDNAT

RPPS_IDNAT = re.compile(r"8\d{11}")
OTHER_PS_IDNAT = re.compile(r"[0-6][0-9A-Za-z]+(/[0-9A-Za-z]+)?")


@dataclass(frozen=True)
class Cx:
    """`id^^^&oid&ISO^type`."""

    id: str
    oid: str
    type_code: str


@dataclass(frozen=True)
class Xcn:
    """authorPerson: national id, its OID, names, identifier type."""

    id: str
    family: str
    oid: str
    id_type: str


@dataclass(frozen=True)
class Xon:
    """authorInstitution: name, OID of the id domain, organisation id."""

    name: str
    oid: str
    org_id: str


def _authority_oid(component: str) -> tuple[str, str]:
    sub = component.split("&")
    return (sub[1] if len(sub) > 1 else "", sub[2] if len(sub) > 2 else "")


def parse_cx(value: str) -> Cx | None:
    """A CX with an ISO assigning authority, or None when the shape is wrong."""
    comps = value.strip().split("^")
    if len(comps) < 4 or not comps[0]:
        return None
    oid, kind = _authority_oid(comps[3])
    if not oid or kind != "ISO":
        return None
    return Cx(id=comps[0], oid=oid, type_code=comps[4] if len(comps) > 4 else "")


def parse_xcn(value: str) -> Xcn | None:
    """XCN.1 id, XCN.2 family name, XCN.9 authority, XCN.13 id type; None if malformed."""
    comps = value.strip().split("^")
    if len(comps) < 9 or not comps[0]:
        return None
    oid, kind = _authority_oid(comps[8])
    if kind != "ISO":
        return None
    return Xcn(id=comps[0], family=comps[1], oid=oid, id_type=comps[12] if len(comps) > 12 else "")


def parse_xon(value: str) -> Xon | None:
    """XON.1 name, XON.6 authority, XON.10 organisation id; None if malformed."""
    comps = value.strip().split("^")
    if len(comps) < 10 or not comps[0] or not comps[9]:
        return None
    oid, kind = _authority_oid(comps[5])
    if kind != "ISO":
        return None
    return Xon(name=comps[0], oid=oid, org_id=comps[9])


def author_person_problem(value: str) -> tuple[str, bool] | None:
    """(French reason, lenient) when authorPerson is not a PS_IdNat XCN, else None."""
    xcn = parse_xcn(value)
    if xcn is None or xcn.oid != OID_PS_IDNAT:
        return ("authorPerson doit être un XCN avec un PS_IdNat (OID 1.2.250.1.71.4.2.1).", False)
    if RPPS_IDNAT.fullmatch(xcn.id):
        return None
    if OTHER_PS_IDNAT.fullmatch(xcn.id):
        return ("authorPerson n'est pas un identifiant RPPS (8 + 11 chiffres).", True)
    return ("Identifiant PS_IdNat de authorPerson mal formé.", False)


def author_institution_problem(value: str) -> str | None:
    """French reason when authorInstitution is not a Struct_IdNat XON, else None."""
    xon = parse_xon(value)
    if xon is None or xon.oid != OID_STRUCT_IDNAT:
        return "authorInstitution doit être un XON avec un Struct_IdNat (OID 1.2.250.1.71.4.2.2)."
    if not re.fullmatch(r"[0-9A-Za-z]+", xon.org_id):
        return "Identifiant Struct_IdNat de authorInstitution mal formé."
    return None
