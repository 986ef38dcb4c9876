"""Build the CDA R2 level 1 document ("structuration minimale") that wraps a PDF — or a plain
text — for the DMP.

The body is `nonXMLBody/text` in base64 (IHE XDS-SD): `application/pdf` for a PDF, `text/plain`
(UTF-8) for a text, and the document's formatCode names which (JDV_J60 has both XDS-SD codes,
`urn:ihe:iti:xds-sd:pdf:2008` and `urn:ihe:iti:xds-sd:text:2008`): the media type is read from
the formatCode, so the metadata and the body can never disagree. `check_text_body` says whether
bytes can be such a text body.

The header follows spec/dmp-protocol.md §4.1, the shape of the ANS reference example
DOC_NON_STRUCTURE_CDA-R2-N1.xml and the asserts of the ANS schematron
1.2.250.1.213.1.1.1.1 (structuration minimale). Pure: the same ClinicalDocument always gives the
same bytes, which matters because the XDS hash and the XAdES digest are computed over them and
a retry must resend exactly what was signed.
"""

from __future__ import annotations

import base64

from lxml import etree

from bridge.classify import FORMAT_TEXT
from bridge.domain import (
    OID_AUTHOR_SPECIALTY,
    OID_LOINC,
    OID_RPPS,
    OID_STRUCTURE,
    Author,
    ClinicalDocument,
    Coded,
    Patient,
    Sex,
)
from bridge.errors import IntakeRejected
from bridge.xds_formats import cda_ts, hl7_date

NS_HL7 = "urn:hl7-org:v3"

# Template ids of a non-structured CI-SIS document: exactly these three (schematron rule
# SMDS_CDAClinicalDocument: the XDS-SD templateId replaces the volet's own templateId).
TEMPLATE_HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
TEMPLATE_CI_SIS = "1.2.250.1.213.1.1.1.1"
TEMPLATE_XDS_SD = "1.3.6.1.4.1.19376.1.2.20"

OID_ADMINISTRATIVE_GENDER = "2.16.840.1.113883.5.1"
LANGUAGE_CODE = "fr-FR"

_GENDER_DISPLAY = {Sex.F: "Féminin", Sex.M: "Masculin", Sex.U: "Inconnu"}

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

MEDIA_TYPE_PDF = "application/pdf"
MEDIA_TYPE_TEXT = "text/plain"
# formatCode (JDV_J60) → media type of the nonXMLBody; any other formatCode: a PDF.
_MEDIA_TYPE_OF_FORMAT = {FORMAT_TEXT: MEDIA_TYPE_TEXT}

# A letter of a few pages is a few kilobytes; 1 MiB of text is several hundred pages.
MAX_TEXT_BYTES = 1024 * 1024
# Plain text has no control characters but tab, line feed, form feed and carriage return.
_CONTROL = frozenset(chr(c) for c in (*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F))


def body_media_type(format_code: str) -> str:
    """The nonXMLBody mediaType of a document of this formatCode."""
    return _MEDIA_TYPE_OF_FORMAT.get(format_code, MEDIA_TYPE_PDF)


def _text_refused(file_name: str, problem: str, code: str) -> IntakeRejected:
    return IntakeRejected(
        f"Le texte du document {file_name} ne peut pas être envoyé au DMP : {problem}. "
        "Rien n'a été envoyé.", code=code, event=code.lower())


def check_text_body(data: bytes, *, file_name: str) -> None:
    """Raise IntakeRejected unless `data` is a plain text in UTF-8 an N1 can carry."""
    if len(data) > MAX_TEXT_BYTES:
        raise _text_refused(
            file_name, f"il dépasse {MAX_TEXT_BYTES // 1024} Ko, la taille maximale d'un "
            "document en texte seul. Exportez ce document en PDF", "TEXT_TOO_LARGE")
    if data.startswith(b"%PDF-"):
        raise _text_refused(
            file_name, "c'est un PDF, pas un texte. Envoyez-le comme PDF (format du contenu "
            "« pdf » dans sa fiche)", "TEXT_IS_PDF")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _text_refused(
            file_name, f"il n'est pas encodé en UTF-8 (octet invalide à la position "
            f"{exc.start}). Réexportez-le en UTF-8 depuis le logiciel", "TEXT_NOT_UTF8",
        ) from None
    if not text.removeprefix("\ufeff").strip():
        raise _text_refused(file_name, "il est vide. Réexportez le document depuis le "
                                       "logiciel", "TEXT_EMPTY")
    if not _CONTROL.isdisjoint(text):
        raise _text_refused(
            file_name, "il contient des caractères de contrôle : ce n'est pas un texte brut. "
            "Exportez ce document en PDF", "TEXT_NOT_PLAIN")


def _sub(
    parent: etree._Element, name: str, attrs: dict[str, str] | None = None, text: str | None = None
) -> etree._Element:
    """Append `hl7:name` with attributes in the given order (the order of the ANS example)."""
    element = etree.SubElement(parent, f"{{{NS_HL7}}}{name}")
    for key, value in (attrs or {}).items():
        element.set(key, value)
    if text is not None:
        element.text = text
    return element


def _coded(parent: etree._Element, name: str, coded: Coded, system_name: str | None = None) -> None:
    attrs = {"code": coded.code, "displayName": coded.display, "codeSystem": coded.system}
    if system_name:
        attrs["codeSystemName"] = system_name
    _sub(parent, name, attrs)


def _person_name(parent: etree._Element, author: Author) -> None:
    person = _sub(parent, "assignedPerson")
    name = _sub(person, "name")
    _sub(name, "given", text=author.given_name)
    _sub(name, "family", text=author.family_name)


def _ps_id(parent: etree._Element, author: Author) -> None:
    _sub(parent, "id", {"root": OID_RPPS, "extension": author.ps_idnat})


def _specialty(parent: etree._Element, author: Author) -> None:
    _sub(
        parent,
        "code",
        {
            "code": author.specialty_code,
            "displayName": author.specialty_display,
            "codeSystem": OID_AUTHOR_SPECIALTY,
        },
    )


def _organization(parent: etree._Element, tag: str, org_id: str, org_name: str) -> etree._Element:
    organization = _sub(parent, tag)
    _sub(organization, "id", {"root": OID_STRUCTURE, "extension": org_id})
    if org_name:
        _sub(organization, "name", text=org_name)
    return organization


def _record_target(parent: etree._Element, patient: Patient) -> None:
    role = _sub(_sub(parent, "recordTarget"), "patientRole")
    _sub(role, "id", {"root": patient.ins.oid.value, "extension": patient.ins.matricule})
    person = _sub(role, "patient", {"classCode": "PSN"})
    name = _sub(person, "name")
    # INS identity traits (schematron: INS root ⇒ family@BR, given@BR, given without qualifier,
    # birthTime, birthplace county and sex are all required).
    _sub(name, "family", {"qualifier": "BR"}, patient.birth_family_name)
    _sub(name, "given", text=" ".join(patient.given_names))
    _sub(name, "given", {"qualifier": "BR"}, patient.first_given_name)
    if patient.used_family_name:
        _sub(name, "family", {"qualifier": "CL"}, patient.used_family_name)
    _sub(
        person,
        "administrativeGenderCode",
        {
            "code": patient.sex.value,
            "displayName": _GENDER_DISPLAY[patient.sex],
            "codeSystem": OID_ADMINISTRATIVE_GENDER,
        },
    )
    _sub(person, "birthTime", {"value": hl7_date(patient.birth_date)})
    if patient.birthplace_code:
        place = _sub(_sub(person, "birthplace"), "place")
        _sub(_sub(place, "addr"), "county", text=patient.birthplace_code)


def _author(parent: etree._Element, doc: ClinicalDocument) -> None:
    author = doc.author
    element = _sub(parent, "author")
    _sub(element, "time", {"value": cda_ts(doc.effective_time)})
    assigned = _sub(element, "assignedAuthor")
    _ps_id(assigned, author)
    _specialty(assigned, author)
    _person_name(assigned, author)
    _organization(assigned, "representedOrganization", author.structure_id, author.structure_name)


def _custodian(parent: etree._Element, doc: ClinicalDocument) -> None:
    if doc.custodian_id:
        custodian_id, custodian_name = doc.custodian_id, doc.custodian_name
    else:
        custodian_id, custodian_name = doc.author.structure_id, doc.author.structure_name
    assigned = _sub(_sub(parent, "custodian"), "assignedCustodian")
    _organization(assigned, "representedCustodianOrganization", custodian_id, custodian_name)


def _legal_authenticator(parent: etree._Element, doc: ClinicalDocument) -> None:
    element = _sub(parent, "legalAuthenticator")
    _sub(element, "time", {"value": cda_ts(doc.effective_time)})
    _sub(element, "signatureCode", {"code": "S"})
    entity = _sub(element, "assignedEntity")
    _ps_id(entity, doc.author)
    _person_name(entity, doc.author)


def _documentation_of(parent: etree._Element, doc: ClinicalDocument) -> None:
    # Schematron: the main act (first serviceEvent) needs exactly one effectiveTime (with low)
    # and one performer whose representedOrganization carries standardIndustryClassCode
    # (→ XDS practiceSettingCode). Its code is optional and we have no act code to give.
    event = _sub(_sub(parent, "documentationOf"), "serviceEvent")
    period = _sub(event, "effectiveTime")
    _sub(period, "low", {"value": cda_ts(doc.service_start)})
    if doc.service_stop is not None:
        _sub(period, "high", {"value": cda_ts(doc.service_stop)})
    entity = _sub(_sub(event, "performer", {"typeCode": "PRF"}), "assignedEntity")
    _ps_id(entity, doc.author)
    _specialty(entity, doc.author)
    _person_name(entity, doc.author)
    organization = _organization(
        entity, "representedOrganization", doc.author.structure_id, doc.author.structure_name
    )
    _coded(
        organization, "standardIndustryClassCode", doc.codes.practice_setting, "practiceSettingCode"
    )


def _related_document(parent: etree._Element, doc: ClinicalDocument) -> None:
    # Spec §4.4 / TD2.1: the replacing version points at the replaced one by its uniqueId. A
    # uniqueId "root^extension" (IHE form) becomes id/@root and id/@extension.
    if doc.replaces_unique_id is None:
        return
    root, _, extension = doc.replaces_unique_id.partition("^")
    attrs = {"root": root, "extension": extension} if extension else {"root": root}
    parent_document = _sub(_sub(parent, "relatedDocument", {"typeCode": "RPLC"}), "parentDocument")
    _sub(parent_document, "id", attrs)


def _component_of(parent: etree._Element, doc: ClinicalDocument) -> None:
    encounter = _sub(_sub(parent, "componentOf"), "encompassingEncounter")
    period = _sub(encounter, "effectiveTime")
    _sub(period, "low", {"value": cda_ts(doc.service_start)})
    if doc.service_stop is not None:
        _sub(period, "high", {"value": cda_ts(doc.service_stop)})
    facility = _sub(_sub(encounter, "location"), "healthCareFacility")
    _sub(facility, "id", {"root": OID_STRUCTURE, "extension": doc.author.structure_id})
    _coded(facility, "code", doc.codes.facility_type)


def build_cda_element(doc: ClinicalDocument) -> etree._Element:
    """The CDA tree; `build_cda` serialises it. Raises ValueError on a naive datetime."""
    root = etree.Element(
        f"{{{NS_HL7}}}ClinicalDocument",
        {"classCode": "DOCCLIN", "moodCode": "EVN"},
        nsmap={None: NS_HL7},
    )
    _sub(root, "realmCode", {"code": "FR"})
    _sub(root, "typeId", {"root": "2.16.840.1.113883.1.3", "extension": "POCD_HD000040"})
    for template in (TEMPLATE_HL7_FRANCE, TEMPLATE_CI_SIS, TEMPLATE_XDS_SD):
        _sub(root, "templateId", {"root": template})
    _sub(root, "id", {"root": doc.unique_id})
    type_code = doc.codes.type_code
    _coded(root, "code", type_code, "LOINC" if type_code.system == OID_LOINC else None)
    _sub(root, "title", text=doc.title)
    _sub(root, "effectiveTime", {"value": cda_ts(doc.effective_time)})
    _coded(root, "confidentialityCode", doc.codes.confidentiality, "Confidentiality")
    _sub(root, "languageCode", {"code": LANGUAGE_CODE})
    _sub(root, "setId", {"root": doc.set_id})
    _sub(root, "versionNumber", {"value": str(doc.version)})
    _record_target(root, doc.patient)
    _author(root, doc)
    _custodian(root, doc)
    _legal_authenticator(root, doc)
    _documentation_of(root, doc)
    _related_document(root, doc)
    _component_of(root, doc)
    body = _sub(_sub(root, "component"), "nonXMLBody")
    _sub(
        body,
        "text",
        {"mediaType": body_media_type(doc.codes.format_code.code), "representation": "B64"},
        base64.b64encode(doc.pdf).decode("ascii"),
    )
    return root


def build_cda(doc: ClinicalDocument) -> bytes:
    """The CDA R2 N1 bytes (UTF-8, with an XML declaration) wrapping `doc.pdf` in base64.

    `doc.pdf` is the document's body: a PDF, or a UTF-8 text when its formatCode is the text
    one (`body_media_type`)."""
    body: bytes = etree.tostring(build_cda_element(doc), encoding="UTF-8")
    return _XML_DECLARATION + body
