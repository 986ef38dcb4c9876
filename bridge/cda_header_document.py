"""The document-level parts of a received CDA's header: body level and media type, templateIds,
id and version, type, confidentiality and language codes, the elements the structuration
minimale requires, the main act (documentationOf/serviceEvent), the legal authenticator and
the replaced document. Each reader adds what the DMP would refuse, in French, to `problems`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from bridge.cda import TEMPLATE_CI_SIS, TEMPLATE_HL7_FRANCE, TEMPLATE_XDS_SD
from bridge.cda_header_xml import attr, find, find_all, read_time, required_coded, text_of
from bridge.domain import Coded

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_MAX_OID_LENGTH = 64  # IHE ITI TF-3: the OID part of an XDS uniqueId
_LANGUAGE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")
_CONFIDENTIALITY = frozenset({"N", "R", "V"})


def read_body(root: Any, problems: list[str]) -> tuple[Literal[1, 3] | None, str | None]:
    non_xml = find(root, "component/nonXMLBody")
    if non_xml is not None:
        media_type = attr(find(non_xml, "text"), "mediaType")
        if media_type is None:
            problems.append("Corps non structuré sans type de contenu (text/@mediaType).")
        return 1, media_type
    if find(root, "component/structuredBody") is not None:
        return 3, None
    problems.append("Corps du document absent (component/nonXMLBody ou structuredBody).")
    return None, None


def check_templates(templates: tuple[str, ...], level: int | None, problems: list[str]) -> None:
    if TEMPLATE_HL7_FRANCE not in templates:
        problems.append(f"templateId {TEMPLATE_HL7_FRANCE} (HL7 France) absent.")
    if TEMPLATE_CI_SIS not in templates:
        problems.append(f"templateId {TEMPLATE_CI_SIS} (CI-SIS, structuration minimale) absent.")
    if level == 1 and sorted(templates) != sorted(
        (TEMPLATE_HL7_FRANCE, TEMPLATE_CI_SIS, TEMPLATE_XDS_SD)
    ):
        problems.append(
            "Un document non structuré doit déclarer exactement les trois templateId "
            f"{TEMPLATE_HL7_FRANCE}, {TEMPLATE_CI_SIS} et {TEMPLATE_XDS_SD} (IHE XDS-SD)."
        )
    if level == 3 and not set(templates) - {TEMPLATE_HL7_FRANCE, TEMPLATE_CI_SIS}:
        problems.append("Document structuré sans le templateId de son volet CI-SIS.")


def read_unique_id(root: Any, problems: list[str]) -> tuple[str | None, str | None]:
    element = find(root, "id")
    unique_id, extension = attr(element, "root"), attr(element, "extension")
    if unique_id is None:
        problems.append("Identifiant du document (id/@root) absent.")
    elif not _OID.match(unique_id) or len(unique_id) > _MAX_OID_LENGTH:
        problems.append(
            f"L'identifiant du document (id/@root) doit être un OID de {_MAX_OID_LENGTH} "
            f"caractères au plus, pas « {unique_id} »."
        )
    return unique_id, extension


def read_version(root: Any, problems: list[str]) -> int | None:
    value = attr(find(root, "versionNumber"), "value")
    if value is not None and value.isdigit() and int(value) > 0:
        return int(value)
    problems.append("Numéro de version (versionNumber) absent ou invalide.")
    return None


def read_service_event(
    root: Any, problems: list[str]
) -> tuple[dt.datetime | None, dt.datetime | None, Coded | None]:
    # Schematron: the main act is the first documentationOf; it needs effectiveTime and performer.
    event = find(root, "documentationOf/serviceEvent")
    if event is None:
        problems.append("Acte principal (documentationOf/serviceEvent) absent.")
        return None, None, None
    period = find(event, "effectiveTime")
    low = find(period, "low")
    start = read_time(
        period if low is None else low,
        "Début de l'acte (serviceEvent/effectiveTime/low)",
        problems,
        required=True,
    )
    stop = read_time(
        find(period, "high"), "Fin de l'acte (effectiveTime/high)", problems, required=False
    )
    organization = find(event, "performer/assignedEntity/representedOrganization")
    setting = required_coded(
        find(organization, "standardIndustryClassCode"),
        "Cadre d'exercice (performer/…/standardIndustryClassCode)",
        problems,
    )
    return start, stop, setting


def read_legal_authenticator(root: Any, problems: list[str]) -> bool:
    element = find(root, "legalAuthenticator")
    if element is None:
        problems.append("Responsable du document (legalAuthenticator) absent.")
        return False
    if attr(find(element, "signatureCode"), "code") != "S":
        problems.append("legalAuthenticator sans signatureCode « S ».")
    return True


def read_related_document(root: Any) -> str | None:
    for related in find_all(root, "relatedDocument"):
        if attr(related, "typeCode") == "RPLC":
            return attr(find(related, "parentDocument/id"), "root")
    return None


def read_document_codes(
    root: Any, problems: list[str]
) -> tuple[Coded | None, Coded | None, str | None]:
    type_code = required_coded(find(root, "code"), "Type de document (code)", problems)
    confidentiality = required_coded(
        find(root, "confidentialityCode"), "Confidentialité (confidentialityCode)", problems
    )
    if confidentiality and confidentiality.code not in _CONFIDENTIALITY:
        problems.append("Confidentialité (confidentialityCode) : N, R ou V attendu.")
    language = attr(find(root, "languageCode"), "code")
    if language is None or not _LANGUAGE.match(language):
        problems.append("Langue du document (languageCode) absente ou invalide : fr-FR attendu.")
    return type_code, confidentiality, language


def check_presence(root: Any, problems: list[str]) -> None:
    for path, message in (
        ("title", "Titre du document (title) absent."),
        ("setId", "Identifiant du lot de versions (setId) absent."),
        ("custodian/assignedCustodian", "Organisation conservant le document (custodian) absente."),
        ("componentOf/encompassingEncounter", "Prise en charge (componentOf) absente."),
    ):
        element = find(root, path)
        if (
            element is None
            or (path == "title" and text_of(element) is None)
            or (path == "setId" and attr(element, "root") is None)
        ):
            problems.append(message)
