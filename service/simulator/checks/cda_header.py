"""The CDA R2 N1 header, as the ANS "structuration minimale" schematron asserts it.

Written as Python from `1.2.250.1.213.1.1.1.1-2017-12-13T103531.sch` (ansforge/TestContenuCDA-3-0,
spec §4.1): the rules of the ClinicalDocument context that concern the header. Messages are the
schematron's own when it has French ones ([CI-SIS_StructurationMinimale], INS traits,
DocumentationOf), otherwise a French rendering of its "element … is mandatory [min 1x]" ones.
The schematron itself is not vendored and not run.
"""

from __future__ import annotations

import re

from lxml import etree

from mappings.valuesets import VS, load_value_set
from service.simulator.invented_codes import InventedCode
from service.simulator.j07_additions import J07_ADDITIONS
from service.simulator.namespaces import HL7, INS_OIDS

N1_TEMPLATES = frozenset({"2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1",
                          "1.3.6.1.4.1.19376.1.2.20"})
LANGUAGE = re.compile(r"[a-z]{2}-[A-Z]{2}")
UID = re.compile(r"[0-2](\.(0|[1-9]\d*))*|[A-Fa-f\d]{8}(-[A-Fa-f\d]{4}){3}-[A-Fa-f\d]{12}"
                 r"|[A-Za-z][A-Za-z\d\-]*")
NS = {"hl7": HL7}
TEMPLATES_MESSAGE = (
    "[CI-SIS_StructurationMinimale] Dans un document CDA non structuré, le templateId "
    '1.3.6.1.4.1.19376.1.2.20 remplace le templateId du volet et seuls les trois templateId '
    '"1.3.6.1.4.1.19376.1.2.20", "2.16.840.1.113883.2.8.2.1" et "1.2.250.1.213.1.1.1.1" sont admis'
)
INS_MESSAGE = (
    "Erreur de conformité CI-SIS : Dans le cadre de l'INS, les traits de l'INS (Nom de naissance, "
    "premier prénom de l'acte de naissance, prénoms de l'acte de naissance, date de naissance, "
    "lieu de naissance (COG) et sexe) sont obligatoires"
)
# (XPath relative to ClinicalDocument, min, max, French label) — "exactly one, no nullFlavor".
CARDINALITIES: tuple[tuple[str, int, int, str], ...] = (
    ("hl7:realmCode[@code='FR']", 1, 1, "realmCode FR"),
    ("hl7:typeId[@root='2.16.840.1.113883.1.3'][@extension='POCD_HD000040']", 1, 1,
     "typeId POCD_HD000040"),
    ("hl7:id[not(@nullFlavor)]", 1, 1, "id"),
    ("hl7:code[not(@nullFlavor)]", 1, 1, "code"),
    ("hl7:title[not(@nullFlavor)]", 1, 1, "title"),
    ("hl7:effectiveTime[not(@nullFlavor)]", 1, 1, "effectiveTime"),
    ("hl7:confidentialityCode[not(@nullFlavor)]", 1, 1, "confidentialityCode"),
    ("hl7:languageCode[not(@nullFlavor)]", 1, 1, "languageCode"),
    ("hl7:setId[not(@nullFlavor)]", 1, 1, "setId"),
    ("hl7:versionNumber[not(@nullFlavor)]", 1, 1, "versionNumber"),
    ("hl7:recordTarget[not(@nullFlavor)]", 1, 1, "recordTarget"),
    ("hl7:author[not(@nullFlavor)][hl7:assignedAuthor]", 1, 99, "author/assignedAuthor"),
    ("hl7:custodian[not(@nullFlavor)][hl7:assignedCustodian]", 1, 1, "custodian"),
    ("hl7:legalAuthenticator[hl7:signatureCode[@code='S']]", 1, 1,
     "legalAuthenticator avec signatureCode S"),
    ("hl7:documentationOf[not(@nullFlavor)][hl7:serviceEvent]", 1, 99,
     "documentationOf/serviceEvent"),
    ("hl7:relatedDocument[@typeCode='RPLC'][hl7:parentDocument]", 0, 1, "relatedDocument RPLC"),
    ("hl7:componentOf[not(@nullFlavor)][hl7:encompassingEncounter]", 1, 1,
     "componentOf/encompassingEncounter"),
    ("hl7:component", 1, 1, "component"),
)


def _count(cda: etree._Element, path: str) -> int:
    found = cda.xpath(path, namespaces=NS)
    return len(found) if isinstance(found, list) else 0


def _has(cda: etree._Element, path: str) -> bool:
    return bool(cda.xpath(path, namespaces=NS))


def _cardinality_messages(cda: etree._Element) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path, low, high, label in CARDINALITIES:
        n = _count(cda, path)
        if n < low:
            out.append((label, f"Élément obligatoire absent : {label} [min {low}x]."))
        elif n > high:
            out.append((label, f"Élément trop répété : {label} [max {high}x]."))
    return out


def _template_messages(cda: etree._Element) -> list[tuple[str, str]]:
    roots = [t.get("root") for t in cda.findall(f"{{{HL7}}}templateId")]
    non_xml = _has(cda, "hl7:component/hl7:nonXMLBody")
    if non_xml and (len(roots) != 3 or set(roots) != N1_TEMPLATES):
        return [("templateId", TEMPLATES_MESSAGE)]
    if not non_xml and not _has(cda, "hl7:component/hl7:structuredBody"):
        return [("component", "component doit contenir nonXMLBody ou structuredBody.")]
    return []


def _value_messages(cda: etree._Element) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if cda.get("classCode") not in (None, "DOCCLIN") or cda.get("moodCode") not in (None, "EVN"):
        out.append(("ClinicalDocument", "classCode doit valoir DOCCLIN et moodCode EVN."))
    language = cda.find(f"{{{HL7}}}languageCode")
    if language is not None and not LANGUAGE.fullmatch(language.get("code") or ""):
        out.append(("languageCode", 'Le languageCode doit respecter la syntaxe (e.g. "fr-FR")'))
    code = cda.find(f"{{{HL7}}}code")
    if code is not None:
        key = (code.get("code") or "", code.get("codeSystem") or "")
        if not load_value_set(VS.TYPE_CODE).contains(*key) and key not in J07_ADDITIONS:
            out.append(("code", "Le code du document doit appartenir au jeu de valeurs JDV_J07 "
                                "(code et codeSystem)."))
        if not code.get("displayName"):
            out.append(("code", "Le code du document doit porter un displayName."))
    conf = cda.find(f"{{{HL7}}}confidentialityCode")
    if conf is not None and not (conf.get("code") in ("N", "R", "V")
                                 and conf.get("codeSystem") == "2.16.840.1.113883.5.25"):
        out.append(("confidentialityCode", "confidentialityCode doit valoir N, R ou V "
                                           "(2.16.840.1.113883.5.25)."))
    for label in ("setId", "id"):
        element = cda.find(f"{{{HL7}}}{label}")
        if element is not None and not UID.fullmatch(element.get("root") or ""):
            out.append((label, f"Attribute @root SHALL be of data type 'uid' ({label})."))
    version = cda.find(f"{{{HL7}}}versionNumber")
    if version is not None and not (version.get("value") or "").isdigit():
        out.append(("versionNumber", "versionNumber/@value doit être un entier."))
    return out


def _patient_messages(cda: etree._Element) -> list[tuple[str, str]]:
    role = "hl7:recordTarget/hl7:patientRole"
    out: list[tuple[str, str]] = []
    if _count(cda, f"{role}[hl7:patient]") != 1:
        out.append(("recordTarget", "recordTarget doit contenir un seul patientRole avec patient."))
        return out
    ids = cda.xpath(f"{role}/hl7:id[not(@nullFlavor)]", namespaces=NS)
    if not isinstance(ids, list) or not ids or any(
        isinstance(i, etree._Element) and not (i.get("root") and i.get("extension")) for i in ids
    ):
        out.append(("recordTarget/patientRole/id",
                    "patientRole/id doit porter les attributs root et extension."))
    if any(isinstance(i, etree._Element) and i.get("root") in INS_OIDS for i in ids or []):
        patient = f"{role}/hl7:patient"
        traits = (
            f"{patient}/hl7:name/hl7:family[@qualifier='BR']",
            f"{patient}/hl7:name/hl7:given[@qualifier='BR']",
            f"{patient}/hl7:name/hl7:given[not(@qualifier)]",
            f"{patient}/hl7:birthTime",
            f"{patient}/hl7:birthplace/hl7:place/hl7:addr/hl7:county",
            f"{patient}/hl7:administrativeGenderCode/@code",
        )
        if not all(_has(cda, t) for t in traits):
            out.append(("recordTarget/patientRole/patient", INS_MESSAGE))
    return out


def _service_event_messages(cda: etree._Element) -> list[tuple[str, str]]:
    event = "hl7:documentationOf[1]/hl7:serviceEvent"
    out: list[tuple[str, str]] = []
    if _count(cda, f"{event}/hl7:performer") != 1:
        out.append(("documentationOf",
                    "DocumentationOf: Le performer est obligatoire dans l'acte principal."))
    if _count(cda, f"{event}/hl7:effectiveTime") != 1:
        out.append(("documentationOf",
                    "DocumentationOf: EffectiveTime est obligatoire dans l'acte principal."))
    return out


def header_messages(cda: etree._Element) -> list[tuple[str, str]]:
    """(location, French message) for each N1 header rule the document breaks."""
    return (_cardinality_messages(cda) + _template_messages(cda) + _value_messages(cda)
            + _patient_messages(cda) + _service_event_messages(cda))


CODE = InventedCode.CDA_INVALIDE
