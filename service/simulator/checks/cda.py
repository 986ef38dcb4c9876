"""The CDA R2 of each document entry (spec §4.1, §4.2): schema, the N1 header rules
(`cda_header`), its id equal to the entry uniqueId, its recordTarget INS equal to the entry
patientId, and the header codes equal to the metadata derived from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import UnsafeXmlError, parse_xml
from service.simulator.checks.cda_header import header_messages
from service.simulator.checks.ebrim import same_patient
from service.simulator.invented_codes import InventedCode
from service.simulator.namespaces import (
    DE_CONFIDENTIALITY,
    DE_FACILITY_TYPE,
    DE_PRACTICE_SETTING,
    DE_TYPE_CODE,
    HL7,
    INS_OIDS,
    q,
)
from service.simulator.problems import IheCode, Problem
from service.simulator.submission import RegistryObject, entry_patient_id, entry_unique_id

CDA_INVALID = InventedCode.CDA_INVALIDE
NS = {"hl7": HL7}
# metadata scheme → (XPath of the CDA code it is derived from, label) — spec §4.2
DERIVED = (
    (DE_TYPE_CODE, "hl7:code", "typeCode"),
    (DE_CONFIDENTIALITY, "hl7:confidentialityCode", "confidentialityCode"),
    (DE_FACILITY_TYPE, "hl7:componentOf/hl7:encompassingEncounter/hl7:location/"
     "hl7:healthCareFacility/hl7:code", "healthcareFacilityTypeCode"),
    (DE_PRACTICE_SETTING, "hl7:documentationOf[1]/hl7:serviceEvent/hl7:performer/"
     "hl7:assignedEntity/hl7:representedOrganization/hl7:standardIndustryClassCode",
     "practiceSettingCode"),
)


@dataclass(frozen=True)
class CdaFacts:
    """What a replacement is judged on: setId, versionNumber, RPLC parent document id."""

    set_id: str | None
    version: int | None
    parent_id: str | None


def _ii(element: etree._Element | None) -> str | None:
    if element is None or not element.get("root"):
        return None
    root, ext = element.get("root") or "", element.get("extension")
    return f"{root}^{ext}" if ext else root


def cda_facts(data: bytes) -> CdaFacts:
    """Read setId, versionNumber and the RPLC parent id; None where unreadable."""
    try:
        cda = parse_xml(data, max_bytes=len(data) + 1, huge_text=True)
    except UnsafeXmlError:
        return CdaFacts(None, None, None)
    version = cda.find(q(HL7, "versionNumber"))
    value = None if version is None else version.get("value") or ""
    parent = cda.find(f"{q(HL7, 'relatedDocument')}[@typeCode='RPLC']/"
                      f"{q(HL7, 'parentDocument')}/{q(HL7, 'id')}")
    return CdaFacts(_ii(cda.find(q(HL7, "setId"))),
                    int(value) if value and value.isdigit() else None, _ii(parent))


def _cda_ins(cda: etree._Element) -> str | None:
    path = f"{q(HL7, 'recordTarget')}/{q(HL7, 'patientRole')}/{q(HL7, 'id')}"
    for ident in cda.findall(path):
        if ident.get("root") in INS_OIDS and ident.get("extension"):
            return f"{ident.get('extension')}^^^&{ident.get('root')}&ISO^NH"
    return None


def _derived_problems(cda: etree._Element, entry: RegistryObject, loc: str) -> list[Problem]:
    problems: list[Problem] = []
    for scheme, path, label in DERIVED:
        found = cda.xpath(path, namespaces=NS)
        codes = entry.classified(scheme)
        if not isinstance(found, list) or not found or not codes:
            continue  # absence is judged by the header and metadata checks
        source = found[0]
        assert isinstance(source, etree._Element)
        pairs = {(c.node, (c.slots.get("codingScheme") or [""])[0]) for c in codes}
        if (source.get("code"), source.get("codeSystem")) not in pairs:
            problems.append(Problem(IheCode.REPOSITORY_METADATA, f"{loc}/{label}",
                                    f"{label} des métadonnées différent du code de l'en-tête "
                                    "CDA dont il est dérivé."))
    return problems


def check_cda(entry: RegistryObject, data: bytes, *, max_bytes: int) -> list[Problem]:
    """All CDA checks for one (non-signature) entry."""
    loc = f"ExtrinsicObject[@id='{entry.id}']/CDA"
    try:
        cda = parse_xml(data, max_bytes=max_bytes, huge_text=True)
    except UnsafeXmlError:
        return [Problem(CDA_INVALID, loc, "Le document n'est pas un XML CDA acceptable.")]
    if cda.tag != q(HL7, "ClinicalDocument"):
        return [Problem(CDA_INVALID, loc, "Le document n'est pas un hl7:ClinicalDocument.")]
    problems = [Problem(CDA_INVALID, loc, f"CDA non conforme au schéma CDA R2 : {err}")
                for err in validation_errors(cda, SchemaName.CDA, limit=3)]
    problems.extend(Problem(CDA_INVALID, f"{loc}/{where}", message)
                    for where, message in header_messages(cda))
    unique_id = entry_unique_id(entry)
    if unique_id and _ii(cda.find(q(HL7, "id"))) != unique_id:
        problems.append(Problem(IheCode.REPOSITORY_METADATA, f"{loc}/id",
                                "L'identifiant du CDA (id/@root^@extension) diffère du uniqueId "
                                "de la fiche."))
    ins = _cda_ins(cda)
    if ins is None:
        problems.append(Problem(CDA_INVALID, f"{loc}/recordTarget",
                                "Le CDA ne porte pas d'INS dans recordTarget/patientRole/id."))
    elif not same_patient(ins, entry_patient_id(entry)):
        problems.append(Problem(IheCode.PATIENT_ID_MISMATCH, f"{loc}/recordTarget",
                                "L'INS du CDA diffère du patientId des métadonnées."))
    problems.extend(_derived_problems(cda, entry, loc))
    return problems
