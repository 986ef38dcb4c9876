"""The CDA R2 of each document entry (spec §4.1, §4.2): schema, N1 header basics, its id equal
to the entry uniqueId, and its recordTarget INS equal to the entry patientId.
"""

from __future__ import annotations

from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import UnsafeXmlError, parse_xml
from service.simulator.checks.ebrim import same_patient
from service.simulator.invented_codes import InventedCode
from service.simulator.namespaces import HL7, INS_OIDS, q
from service.simulator.problems import IheCode, Problem
from service.simulator.submission import RegistryObject, entry_patient_id, entry_unique_id

N1_TEMPLATES = frozenset({"2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1",
                          "1.3.6.1.4.1.19376.1.2.20"})
CDA_INVALID = InventedCode.CDA_INVALIDE


def _header_problems(cda: etree._Element, loc: str) -> list[Problem]:
    problems: list[Problem] = []
    templates = {t.get("root") for t in cda.findall(q(HL7, "templateId"))}
    if not templates >= N1_TEMPLATES:
        problems.append(Problem(CDA_INVALID, f"{loc}/templateId",
                                "Les trois templateId du CDA N1 (HL7 France, CI-SIS, XDS-SD) "
                                "sont requis."))
    realms = [r.get("code") for r in cda.findall(q(HL7, "realmCode"))]
    if realms != ["FR"]:
        problems.append(Problem(CDA_INVALID, f"{loc}/realmCode", "realmCode doit valoir FR."))
    code = cda.find(q(HL7, "code"))
    if code is None or not code.get("code") or not code.get("codeSystem"):
        problems.append(Problem(CDA_INVALID, f"{loc}/code",
                                "code du document (type) absent ou incomplet."))
    language = cda.find(q(HL7, "languageCode"))
    if language is None or language.get("code") != "fr-FR":
        problems.append(Problem(CDA_INVALID, f"{loc}/languageCode",
                                "languageCode doit valoir fr-FR."))
    return problems


def _cda_unique_id(cda: etree._Element) -> str | None:
    found = cda.find(q(HL7, "id"))
    if found is None or not found.get("root"):
        return None
    root, ext = found.get("root") or "", found.get("extension")
    return f"{root}^{ext}" if ext else root


def _cda_ins(cda: etree._Element) -> str | None:
    path = f"{q(HL7, 'recordTarget')}/{q(HL7, 'patientRole')}/{q(HL7, 'id')}"
    for ident in cda.findall(path):
        if ident.get("root") in INS_OIDS and ident.get("extension"):
            return f"{ident.get('extension')}^^^&{ident.get('root')}&ISO^NH"
    return None


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
    problems.extend(_header_problems(cda, loc))
    unique_id = entry_unique_id(entry)
    if unique_id and _cda_unique_id(cda) != unique_id:
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
    return problems
