"""VIHF checks (spec §2.3, §8.4): the SAML assertion in wsse:Security, its signature, its
mandatory attributes and their values, its time window and its consistency with TLS.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from service.simulator.checks.algorithms import sha1_problems
from service.simulator.checks.authmode import check_auth_mode
from service.simulator.invented_codes import InventedCode
from service.simulator.namespaces import DS, HL7, INS_OIDS, SAML, WSSE, q
from service.simulator.problems import Problem
from service.simulator.trust import SignatureRefused, Trust, verify_signature
from service.simulator.xds_types import parse_cx

PROFESSION_SYSTEM = "1.2.250.1.71.1.2.7"  # TRE_G15
OTHER_ACTOR_SYSTEMS = frozenset({"1.2.250.1.71.1.2.8", "1.2.250.1.213.1.1.4.6"})  # G16, A00
PURPOSE_SYSTEM = "1.2.250.1.213.1.1.4.248"
PURPOSES = frozenset({"normal", "bris_de_glace", "centre_15"})
MODES = frozenset({"DIRECTE", "INDIRECTE", "INDIRECTE_RENFORCEE"})
ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
PURPOSE_SYSTEM_NAME = "mode acces VIHF 1.0"
# Decision: centre_15 (access by a regulation centre) is recognised by the VIHF roles of a
# médecin régulateur: profession 10 (TRE_G15) with an emergency-medicine savoir-faire (TRE_R01
# SM59 / SCH36 / DSM220 "Médecine d'urgence"). No public source gives the DMP's own rule.
SAMU_REGULATOR_SKILLS = frozenset({"SM59", "SCH36", "DSM220"})
REQUIRED_TEXT = (
    "Identifiant_Structure", "Secteur_Activite", SUBJECT_ID, "LPS_Nom", "LPS_ID_HOMOLOGATION_DMP",
)


@dataclass(frozen=True)
class VihfFindings:
    """What the VIHF check learnt: its problems, and the patient INS (CX) it targets."""

    problems: list[Problem]
    resource_ins: str | None = None
    mode: str | None = None
    name_id: str | None = None  # Subject/NameID: the user's PS_IdNat
    purpose: str | None = None  # purposeofuse code (normal, bris_de_glace, centre_15)


def _invalid(location: str, message: str, *, lenient: bool = False) -> Problem:
    return Problem(InventedCode.VIHF_INVALIDE, location, message, lenient=lenient)


def _values(assertion: etree._Element) -> dict[str, list[etree._Element]]:
    values: dict[str, list[etree._Element]] = {}
    for attr in assertion.iter(q(SAML, "Attribute")):
        name = attr.get("Name") or ""
        values.setdefault(name, []).extend(attr.findall(q(SAML, "AttributeValue")))
    return values


def _text(values: dict[str, list[etree._Element]], name: str) -> str | None:
    found = values.get(name) or []
    return (found[0].text or "").strip() or None if found else None


def _instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _check_times(assertion: etree._Element, now: dt.datetime, skew: int) -> list[Problem]:
    window = dt.timedelta(seconds=skew)
    issued = _instant(assertion.get("IssueInstant"))
    loc = "VIHF/@IssueInstant"
    if issued is None:
        return [_invalid(loc, "IssueInstant absent ou illisible dans le VIHF.")]
    problems: list[Problem] = []
    if abs(now - issued) > window:
        problems.append(Problem(
            InventedCode.VIHF_HORODATAGE, loc,
            "VIHF émis hors de la fenêtre de tolérance horaire : vérifiez l'horloge du poste.",
        ))
    conditions = assertion.find(q(SAML, "Conditions"))
    if conditions is not None:
        not_after = _instant(conditions.get("NotOnOrAfter"))
        not_before = _instant(conditions.get("NotBefore"))
        if not_after is not None and now - window >= not_after:
            problems.append(Problem(InventedCode.VIHF_HORODATAGE, "VIHF/Conditions/@NotOnOrAfter",
                                    "Le VIHF a expiré (NotOnOrAfter dépassé)."))
        if not_before is not None and now + window < not_before:
            problems.append(Problem(InventedCode.VIHF_HORODATAGE, "VIHF/Conditions/@NotBefore",
                                    "Le VIHF n'est pas encore valide (NotBefore)."))
    return problems


def _check_roles(values: dict[str, list[etree._Element]]) -> list[Problem]:
    loc = f"VIHF/Attribute[@Name='{ROLE}']"
    roles = [v.find(q(HL7, "Role")) for v in values.get(ROLE, [])]
    if not roles or any(r is None for r in roles):
        return [_invalid(loc, "Attribut role absent ou sans élément hl7:Role.")]
    first = roles[0]
    assert first is not None
    code, system = first.get("code") or "", first.get("codeSystem") or ""
    problems: list[Problem] = []
    if system in OTHER_ACTOR_SYSTEMS:
        problems.append(_invalid(loc, "Premier rôle hors TRE_G15 (acteur non professionnel).",
                                 lenient=True))
    elif system != PROFESSION_SYSTEM or not code:
        problems.append(_invalid(loc, "Le premier rôle doit être une profession TRE_G15."))
    needs_second = system == PROFESSION_SYSTEM and code in ("10", "21")
    if needs_second and len(roles) != 2:
        problems.append(_invalid(loc, "Un second rôle est obligatoire pour un médecin ou un "
                                      "pharmacien (et un seul)."))
    if not needs_second and len(roles) > 1:
        problems.append(_invalid(loc, "Un second rôle n'est permis que pour un médecin ou un "
                                      "pharmacien."))
    return problems


def _role_codes(values: dict[str, list[etree._Element]]) -> list[tuple[str, str]]:
    roles = [v.find(q(HL7, "Role")) for v in values.get(ROLE, [])]
    return [(r.get("code") or "", r.get("codeSystem") or "") for r in roles if r is not None]


def _check_purpose(values: dict[str, list[etree._Element]]) -> tuple[list[Problem], str | None]:
    loc = f"VIHF/Attribute[@Name='{PURPOSE}']"
    purposes = [v.find(q(HL7, "PurposeOfUse")) for v in values.get(PURPOSE, [])]
    purpose = purposes[0] if len(purposes) == 1 else None
    if (purpose is None or purpose.get("code") not in PURPOSES
            or purpose.get("codeSystem") != PURPOSE_SYSTEM):
        return [_invalid(loc, "Mode d'accès (purposeofuse) absent ou hors TRE_R248.")], None
    problems: list[Problem] = []
    code = purpose.get("code")
    system_name = purpose.get("codeSystemName")
    if system_name not in (None, PURPOSE_SYSTEM_NAME):
        problems.append(_invalid(loc, f"codeSystemName « {system_name} » : « mode acces VIHF "
                                      "1.0 » est attendu.", lenient=True))
    if code == "centre_15":
        roles = _role_codes(values)
        regulator = (len(roles) == 2 and roles[0] == ("10", PROFESSION_SYSTEM)
                     and roles[1][0] in SAMU_REGULATOR_SKILLS)
        if not regulator:
            problems.append(_invalid(loc, "Le mode d'accès centre_15 est réservé au médecin "
                                          "régulateur d'un centre 15 (SAMU)."))
    return problems, code


def _check_attributes(
    values: dict[str, list[etree._Element]],
) -> tuple[list[Problem], str | None, str | None]:
    """Problems, the authentication mode and the resource-id INS (None when unusable)."""
    problems: list[Problem] = []
    version = _text(values, "VIHF_Version")
    if version not in ("3.0", "4.0"):
        problems.append(_invalid("VIHF/Attribute[@Name='VIHF_Version']",
                                 "VIHF_Version absent ou différent de 3.0 / 4.0."))
    mode = _text(values, "Authentification_Mode")
    if mode is None and _text(values, "Authentification_mode") is not None:
        mode = _text(values, "Authentification_mode")
        problems.append(_invalid("VIHF/Attribute[@Name='Authentification_mode']",
                                 "Attribut « Authentification_mode » : l'orthographe attendue est "
                                 "« Authentification_Mode ».", lenient=True))
    if mode not in MODES:
        problems.append(_invalid("VIHF/Attribute[@Name='Authentification_Mode']",
                                 "Authentification_Mode absent ou inconnu."))
    for name in REQUIRED_TEXT:
        if _text(values, name) is None:
            problems.append(_invalid(f"VIHF/Attribute[@Name='{name}']",
                                     f"Attribut VIHF obligatoire absent : {name}."))
    if _text(values, "Ressource_URN") != "urn:dmp":
        problems.append(_invalid("VIHF/Attribute[@Name='Ressource_URN']",
                                 "Ressource_URN doit valoir urn:dmp."))
    problems.extend(_check_roles(values))
    ins = _text(values, RESOURCE_ID)
    cx = parse_cx(ins) if ins else None
    if cx is None or cx.oid not in INS_OIDS or cx.type_code != "NH":
        problems.append(_invalid(f"VIHF/Attribute[@Name='{RESOURCE_ID}']",
                                 "resource-id doit être un INS au format CX avec un OID d'INS."))
        ins = None
    return problems, mode, ins


def check_vihf(
    header: etree._Element | None,
    *,
    trust: Trust,
    now: dt.datetime,
    clock_skew_seconds: int,
    tls_client_dn: str | None,
) -> VihfFindings:
    """All VIHF checks; the signature is required except in DIRECTE mode (spec §2.3)."""
    security = None if header is None else header.find(q(WSSE, "Security"))
    assertions = [] if security is None else security.findall(q(SAML, "Assertion"))
    if len(assertions) != 1:
        return VihfFindings([Problem(InventedCode.VIHF_ABSENT, "wsse:Security",
                                     "Le jeton VIHF (une assertion SAML) est absent.")])
    assertion = assertions[0]
    problems = [_invalid("VIHF", "Le VIHF n'est pas conforme au schéma SAML 2.0 / VIHF.")
                for _ in validation_errors(assertion, SchemaName.VIHF, limit=1)]
    values = _values(assertion)
    attr_problems, mode, ins = _check_attributes(values)
    problems.extend(attr_problems)
    purpose_problems, purpose = _check_purpose(values)
    problems.extend(purpose_problems)
    problems.extend(_check_times(assertion, now, clock_skew_seconds))
    signature = assertion.find(q(DS, "Signature"))
    if signature is not None or mode != "DIRECTE":
        problems.extend(_check_signature(assertion, trust=trust, now=now))
    if signature is not None:
        problems.extend(sha1_problems(signature, InventedCode.VIHF_SIGNATURE, "VIHF/ds:Signature"))
    name_id = (assertion.findtext(f"{q(SAML, 'Subject')}/{q(SAML, 'NameID')}") or "").strip()
    problems.extend(check_auth_mode(mode if mode in MODES else None, tls_client_dn,
                                    name_id or None))
    return VihfFindings(problems, ins, mode, name_id or None, purpose)


def _check_signature(assertion: etree._Element, *, trust: Trust, now: dt.datetime) -> list[Problem]:
    loc = "VIHF/ds:Signature"
    assertion_id = assertion.get("ID")
    if not assertion_id:
        return [Problem(InventedCode.VIHF_SIGNATURE, loc, "Assertion VIHF sans attribut ID.")]
    try:
        _, results = verify_signature(assertion, trust=trust, now=now, expect_references=1,
                                      id_attribute="ID")
    except SignatureRefused as exc:
        return [Problem(InventedCode.VIHF_SIGNATURE, loc, f"Signature du VIHF refusée : "
                                                          f"{exc.message_fr}")]
    signed = results[0].signed_xml
    if signed is None or signed.get("ID") != assertion_id or signed.tag != assertion.tag:
        return [Problem(InventedCode.VIHF_SIGNATURE, loc,
                        "La signature du VIHF ne porte pas sur l'assertion elle-même.")]
    return []
