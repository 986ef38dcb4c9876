"""The ebRIM 3.0 building blocks shared by ITI-41 (bridge.ebrim) and ITI-57 (bridge.iti57):
slots, names, coded classifications, the author classification, external identifiers,
associations, and the SubmissionSet RegistryPackage that every DMP write carries.

Pure: ids are sequential symbolic names, times come in as arguments.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from bridge import xds_ids as ids
from bridge.domain import Author, Coded, Ins
from bridge.xds_formats import author_specialty, dtm, xcn_ps, xon

SUBMISSION_SET_ID = "SubmissionSet01"
LANGUAGE_CODE = "fr-FR"
NSMAP = {"xdsb": ids.NS_XDSB, "lcm": ids.NS_LCM, "rim": ids.NS_RIM}

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

IDENTIFIER_NAMES = {
    ids.SS_UNIQUE_ID: "XDSSubmissionSet.uniqueId",
    ids.SS_SOURCE_ID: "XDSSubmissionSet.sourceId",
    ids.SS_PATIENT_ID: "XDSSubmissionSet.patientId",
    ids.DE_PATIENT_ID: "XDSDocumentEntry.patientId",
    ids.DE_UNIQUE_ID: "XDSDocumentEntry.uniqueId",
}


def rim(name: str) -> str:
    """Clark name of an ebRIM 3.0 element."""
    return f"{{{ids.NS_RIM}}}{name}"


def sha1_hex(data: bytes) -> str:
    """XDS hash: SHA-1 of the exact bytes sent, lower-case hex (IHE ITI TF-3 §4.2.3.2.10)."""
    # SHA-1 is what the XDS hash slot is defined as; it is an integrity check, not security.
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


class Ids:
    """Sequential symbolic ids for the classifications and external identifiers of one request."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        count = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = count
        return f"{prefix}{count:02d}"


def slot(parent: etree._Element, name: str, values: Iterable[str]) -> etree._Element:
    element = etree.SubElement(parent, rim("Slot"), name=name)
    value_list = etree.SubElement(element, rim("ValueList"))
    for value in values:
        etree.SubElement(value_list, rim("Value")).text = value
    return element


def name(parent: etree._Element, text: str) -> None:
    element = etree.SubElement(parent, rim("Name"))
    localized = etree.SubElement(element, rim("LocalizedString"))
    # Without xml:lang the schema default is en-US; the texts are French.
    localized.set(_XML_LANG, LANGUAGE_CODE)
    localized.set("charset", "UTF-8")
    localized.set("value", text)


def coded_classification(
    parent: etree._Element, scheme: str, object_id: str, coded: Coded, idgen: Ids
) -> etree._Element:
    element = etree.SubElement(
        parent,
        rim("Classification"),
        id=idgen.next("cl"),
        classificationScheme=scheme,
        classifiedObject=object_id,
        nodeRepresentation=coded.code,
    )
    slot(element, "codingScheme", [coded.system])
    name(element, coded.display)
    return element


def author_classification(
    parent: etree._Element, scheme: str, object_id: str, author: Author, idgen: Ids
) -> None:
    # IHE: the author classification has an empty nodeRepresentation and no codingScheme.
    element = etree.SubElement(
        parent,
        rim("Classification"),
        id=idgen.next("cl"),
        classificationScheme=scheme,
        classifiedObject=object_id,
        nodeRepresentation="",
    )
    slot(element, "authorPerson", [xcn_ps(author)])
    slot(element, "authorInstitution", [xon(author)])
    if author.role_display:
        slot(element, "authorRole", [author.role_display])
    slot(element, "authorSpecialty", [author_specialty(author)])


def external_identifier(
    parent: etree._Element, scheme: str, object_id: str, value: str, idgen: Ids
) -> None:
    element = etree.SubElement(
        parent,
        rim("ExternalIdentifier"),
        id=idgen.next("ei"),
        registryObject=object_id,
        identificationScheme=scheme,
        value=value,
    )
    name(element, IDENTIFIER_NAMES[scheme])


def association(
    parent: etree._Element,
    assoc_id: str,
    kind: str,
    source: str,
    target: str,
    *,
    original: bool,
) -> etree._Element:
    element = etree.SubElement(
        parent,
        rim("Association"),
        id=assoc_id,
        associationType=kind,
        sourceObject=source,
        targetObject=target,
    )
    if original:
        slot(element, "SubmissionSetStatus", [ids.SUBMISSION_SET_STATUS_ORIGINAL])
    return element


@dataclass(frozen=True)
class SubmissionSetHeader:
    """What the SubmissionSet RegistryPackage says, for a feed (ITI-41) or an update (ITI-57)."""

    unique_id: str  # OID of the set, minted once
    source_id: str  # OID of this bridge installation
    submission_time: dt.datetime  # aware
    author: Author
    patient: Ins
    content_type: Coded  # JDV_J59
    title: str = ""


def submission_set(parent: etree._Element, header: SubmissionSetHeader, idgen: Ids) -> None:
    """The RegistryPackage `SubmissionSet01` and its SubmissionSet classification."""
    package = etree.SubElement(parent, rim("RegistryPackage"), id=SUBMISSION_SET_ID)
    slot(package, "submissionTime", [dtm(header.submission_time)])
    if header.title:
        name(package, header.title)
    author_classification(package, ids.SS_AUTHOR, SUBMISSION_SET_ID, header.author, idgen)
    coded_classification(
        package, ids.SS_CONTENT_TYPE_CODE, SUBMISSION_SET_ID, header.content_type, idgen
    )
    for scheme, value in (
        (ids.SS_UNIQUE_ID, header.unique_id),
        (ids.SS_SOURCE_ID, header.source_id),
        (ids.SS_PATIENT_ID, header.patient.cx()),
    ):
        external_identifier(package, scheme, SUBMISSION_SET_ID, value, idgen)
    etree.SubElement(
        parent,
        rim("Classification"),
        id=idgen.next("cl"),
        classifiedObject=SUBMISSION_SET_ID,
        classificationNode=ids.SUBMISSION_SET_NODE,
    )
