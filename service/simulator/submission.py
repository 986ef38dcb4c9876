"""The ITI-41 request read into plain values: the submission set, the entries, the
associations and the document bytes. Reading never refuses; the checks judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from service.simulator.mtom import MtomError, include_bytes
from service.simulator.namespaces import (
    DE_FORMAT_CODE,
    DE_PATIENT_ID,
    DE_UNIQUE_ID,
    LCM,
    RIM,
    SIGNATURE_FORMATS,
    SS_PATIENT_ID,
    SS_UNIQUE_ID,
    SUBMISSION_SET_NODE,
    XDSB,
    q,
)


@dataclass(frozen=True)
class Classification:
    """A `rim:Classification`: scheme, node (code), its slots (codingScheme, author*…)."""

    scheme: str
    node: str
    slots: dict[str, list[str]]
    name: str


@dataclass(frozen=True)
class RegistryObject:
    """A RegistryPackage or an ExtrinsicObject with what the checks read."""

    id: str
    element: etree._Element
    slots: dict[str, list[str]]
    classifications: list[Classification]
    external_ids: dict[str, str]
    mime_type: str | None = None

    def slot(self, name: str) -> str | None:
        values = self.slots.get(name) or []
        return values[0].strip() if values else None

    def classified(self, scheme: str) -> list[Classification]:
        return [c for c in self.classifications if c.scheme == scheme]

    @property
    def format_code(self) -> str | None:
        found = self.classified(DE_FORMAT_CODE)
        return found[0].node if found else None

    @property
    def is_signature(self) -> bool:
        return self.format_code in SIGNATURE_FORMATS


@dataclass(frozen=True)
class Association:
    id: str
    type: str
    source: str
    target: str
    slots: dict[str, list[str]] = field(default_factory=dict)

    def slot(self, name: str) -> str | None:
        values = self.slots.get(name) or []
        return values[0].strip() if values else None


@dataclass
class Submission:
    """Everything in the request body, as read."""

    packages: list[RegistryObject] = field(default_factory=list)
    submission_sets: list[RegistryObject] = field(default_factory=list)
    entries: list[RegistryObject] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)
    documents: dict[str, bytes] = field(default_factory=dict)
    document_errors: dict[str, str] = field(default_factory=dict)  # id → French reason
    document_ids: list[str] = field(default_factory=list)  # in order, duplicates kept

    @property
    def submission_set(self) -> RegistryObject | None:
        return self.submission_sets[0] if len(self.submission_sets) == 1 else None

    def set_unique_id(self) -> str | None:
        ss = self.submission_set
        return ss.external_ids.get(SS_UNIQUE_ID) if ss else None

    def set_patient_id(self) -> str | None:
        ss = self.submission_set
        return ss.external_ids.get(SS_PATIENT_ID) if ss else None

    @property
    def documents_entries(self) -> list[RegistryObject]:
        return [e for e in self.entries if not e.is_signature]

    @property
    def signature_entries(self) -> list[RegistryObject]:
        return [e for e in self.entries if e.is_signature]


def entry_unique_id(entry: RegistryObject) -> str | None:
    return entry.external_ids.get(DE_UNIQUE_ID)


def entry_patient_id(entry: RegistryObject) -> str | None:
    return entry.external_ids.get(DE_PATIENT_ID)


def _slots(element: etree._Element) -> dict[str, list[str]]:
    slots: dict[str, list[str]] = {}
    for slot in element.findall(q(RIM, "Slot")):
        values = [(v.text or "").strip() for v in slot.iter(q(RIM, "Value"))]
        slots.setdefault(slot.get("name") or "", []).extend(values)
    return slots


def _name(element: etree._Element) -> str:
    found = element.find(f"{q(RIM, 'Name')}/{q(RIM, 'LocalizedString')}")
    return "" if found is None else (found.get("value") or "")


def _object(element: etree._Element) -> RegistryObject:
    classifications = [
        Classification(
            scheme=c.get("classificationScheme") or "",
            node=c.get("nodeRepresentation") or c.get("classificationNode") or "",
            slots=_slots(c),
            name=_name(c),
        )
        for c in element.findall(q(RIM, "Classification"))
    ]
    external = {
        (x.get("identificationScheme") or ""): (x.get("value") or "").strip()
        for x in element.findall(q(RIM, "ExternalIdentifier"))
    }
    return RegistryObject(
        id=element.get("id") or "",
        element=element,
        slots=_slots(element),
        classifications=classifications,
        external_ids=external,
        mime_type=element.get("mimeType"),
    )


def _is_submission_set(package: etree._Element, objects: etree._Element) -> bool:
    pid = package.get("id")
    for c in package.findall(q(RIM, "Classification")):
        if c.get("classificationNode") == SUBMISSION_SET_NODE:
            return True
    for c in objects.findall(q(RIM, "Classification")):  # IHE also allows it as a sibling
        if c.get("classificationNode") == SUBMISSION_SET_NODE and c.get("classifiedObject") == pid:
            return True
    return False


def read_objects(objects: etree._Element | None, sub: Submission | None = None) -> Submission:
    """Read a `rim:RegistryObjectList` (ITI-41 and ITI-57 share this)."""
    sub = sub or Submission()
    if objects is None:
        return sub
    for package in objects.findall(q(RIM, "RegistryPackage")):
        obj = _object(package)
        sub.packages.append(obj)
        if _is_submission_set(package, objects):
            sub.submission_sets.append(obj)
    sub.entries = [_object(e) for e in objects.findall(q(RIM, "ExtrinsicObject"))]
    sub.associations = [
        Association(
            id=a.get("id") or "",
            type=a.get("associationType") or "",
            source=a.get("sourceObject") or "",
            target=a.get("targetObject") or "",
            slots=_slots(a),
        )
        for a in objects.findall(q(RIM, "Association"))
    ]
    return sub


def read_submission(request: etree._Element, parts: dict[str, bytes]) -> Submission:
    """Read `xdsb:ProvideAndRegisterDocumentSetRequest` (schema-checked beforehand)."""
    objects = request.find(f"{q(LCM, 'SubmitObjectsRequest')}/{q(RIM, 'RegistryObjectList')}")
    sub = read_objects(objects)
    for doc in request.findall(q(XDSB, "Document")):
        doc_id = doc.get("id") or ""
        sub.document_ids.append(doc_id)
        try:
            sub.documents[doc_id] = include_bytes(doc, parts)
        except MtomError as exc:
            sub.document_errors[doc_id] = exc.message_fr
    return sub
