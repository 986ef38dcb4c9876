"""ITI-57 Update Document Set (TD3.3): availability changes (delete, archive, unarchive) and the
metadata update that adds or removes the visibility flags (MASQUE_PS, INVISIBLE_PATIENT,
INVISIBLE_REPRESENTANTS_LEGAUX).

Both are an `lcm:SubmitObjectsRequest` with a SubmissionSet like a feed's (spec §4.5–4.6,
docs/wire-contract.md). Pure: the entry to change comes from an ITI-18 LeafClass answer (TD3.1b),
ids and times come in as arguments.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from enum import StrEnum

from lxml import etree

from bridge import xds_ids as ids
from bridge.domain import OID_CONFIDENTIALITY, OID_VISIBILITY, Coded
from bridge.ebrim_parts import (
    NSMAP,
    SUBMISSION_SET_ID,
    Ids,
    SubmissionSetHeader,
    association,
    coded_classification,
    rim,
    slot,
    submission_set,
)
from bridge.errors import BridgeError
from bridge.iti18 import AvailabilityStatus, RegistryEntry

ACTION_ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
UPDATED_ENTRY_ID = "DocumentEntry01"

# The availability changes the DMP allows (spec §4.5): delete from Approved, archive, unarchive.
ALLOWED_CHANGES = frozenset(
    {
        (AvailabilityStatus.APPROVED, AvailabilityStatus.DELETED),
        (AvailabilityStatus.APPROVED, AvailabilityStatus.ARCHIVED),
        (AvailabilityStatus.ARCHIVED, AvailabilityStatus.APPROVED),
    }
)


class VisibilityFlag(StrEnum):
    """TRE_A07 visibility codes, sent as extra confidentialityCodes (1.2.250.1.213.1.1.4.13)."""

    MASQUE_PS = "MASQUE_PS"  # hidden from professionals (TD3.3a)
    INVISIBLE_PATIENT = "INVISIBLE_PATIENT"  # not visible to the patient (TD3.3b)
    INVISIBLE_REPRESENTANTS_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"  # nor to legal guardians

    @property
    def coded(self) -> Coded:
        display = {
            VisibilityFlag.MASQUE_PS: "Masqué aux professionnels de santé",
            VisibilityFlag.INVISIBLE_PATIENT: "Non visible par le patient",
            VisibilityFlag.INVISIBLE_REPRESENTANTS_LEGAUX: (
                "Non visible par les représentants légaux du patient"
            ),
        }[self]
        return Coded(self.value, display, OID_VISIBILITY)


_FLAG_CODES = frozenset(f.value for f in VisibilityFlag)


class UpdateRefused(BridgeError):
    """The requested update cannot be asked of the DMP as it stands."""

    code = "DMP_MISE_A_JOUR_IMPOSSIBLE"
    event = "update_refused"


_STATUS_FR = {
    AvailabilityStatus.APPROVED: "actif",
    AvailabilityStatus.DEPRECATED: "remplacé",
    AvailabilityStatus.ARCHIVED: "archivé",
    AvailabilityStatus.DELETED: "supprimé",
}


def _request(header: SubmissionSetHeader) -> tuple[etree._Element, etree._Element, Ids]:
    idgen = Ids()
    request = etree.Element(f"{{{ids.NS_LCM}}}SubmitObjectsRequest", nsmap=NSMAP)
    objects = etree.SubElement(request, rim("RegistryObjectList"))
    submission_set(objects, header, idgen)
    return request, objects, idgen


def build_availability_update(
    header: SubmissionSetHeader,
    *,
    entry_uuid: str,
    original: AvailabilityStatus,
    new: AvailabilityStatus,
) -> etree._Element:
    """TD3.3c (delete) / TD3.3d (archive, unarchive): an UpdateAvailabilityStatus association
    from the SubmissionSet to the entry, made a member of the set."""
    if (original, new) not in ALLOWED_CHANGES:
        raise UpdateRefused(
            f"Le DMP ne permet pas de passer un document de l'état « {_STATUS_FR[original]} » "
            f"à l'état « {_STATUS_FR[new]} »."
        )
    request, objects, idgen = _request(header)
    update_id = idgen.next("Assoc")
    update = association(
        objects,
        update_id,
        ids.ASSOC_UPDATE_AVAILABILITY,
        SUBMISSION_SET_ID,
        entry_uuid,
        original=False,
    )
    slot(update, "OriginalStatus", [original.value])
    slot(update, "NewStatus", [new.value])
    association(
        objects,
        idgen.next("Assoc"),
        ids.ASSOC_HAS_MEMBER,
        SUBMISSION_SET_ID,
        update_id,
        original=True,
    )
    return request


def updated_confidentiality(
    current: Iterable[Coded],
    *,
    add: Iterable[VisibilityFlag] = (),
    remove: Iterable[VisibilityFlag] = (),
) -> tuple[Coded, ...]:
    """The new confidentialityCode list: the N/R/V code(s) first, then the flags, in TRE_A07
    order. Other codes the DMP returned are kept as they are, after the flags."""
    add_set, remove_set = set(add), set(remove)
    if add_set & remove_set:
        raise UpdateRefused("Un même statut de visibilité ne peut pas être ajouté et retiré.")
    current = tuple(current)
    levels = [c for c in current if c.system == OID_CONFIDENTIALITY]
    known = [c for c in current if c.system == OID_VISIBILITY and c.code in _FLAG_CODES]
    flags = {VisibilityFlag(c.code) for c in known}
    others = [c for c in current if c not in levels and c not in known]
    if not levels:
        raise UpdateRefused(
            "Le document n'a pas de niveau de confidentialité (N, R ou V) dans le DMP ; "
            "sa visibilité ne peut pas être modifiée."
        )
    wanted = (flags | add_set) - remove_set
    return (*levels, *(f.coded for f in VisibilityFlag if f in wanted), *others)


def _renamed(entry: etree._Element, new_id: str, idgen: Ids) -> etree._Element:
    """A copy of the registry's ExtrinsicObject under a symbolic id: its own children get fresh
    symbolic ids (reusing the registry's UUIDs would collide with the registered objects)."""
    element = copy.deepcopy(entry)
    element.set("id", new_id)
    for attribute in ("status", "home"):
        element.attrib.pop(attribute, None)
    for child in list(element):
        if child.tag in (rim("VersionInfo"), rim("ContentVersionInfo")):
            element.remove(child)
        elif child.tag == rim("Classification"):
            child.set("id", idgen.next("cl"))
            child.set("classifiedObject", new_id)
        elif child.tag == rim("ExternalIdentifier"):
            child.set("id", idgen.next("ei"))
            child.set("registryObject", new_id)
        child.attrib.pop("lid", None)
    return element


def build_metadata_update(
    header: SubmissionSetHeader,
    entry: RegistryEntry,
    *,
    add: Iterable[VisibilityFlag] = (),
    remove: Iterable[VisibilityFlag] = (),
) -> etree._Element:
    """TD3.3a/b: a new version of the entry's metadata (same logicalId) whose confidentialityCode
    classifications carry the updated flags; HasMember with PreviousVersion = current version."""
    if entry.availability is not AvailabilityStatus.APPROVED:
        state = _STATUS_FR[entry.availability] if entry.availability else entry.status
        raise UpdateRefused(
            f"Seul un document actif peut changer de visibilité ; celui-ci est « {state} »."
        )
    if entry.version is None:
        raise UpdateRefused("Le DMP n'a pas indiqué la version du document ; réessayez.")
    if entry.patient_id != header.patient.cx():
        raise UpdateRefused("Le document ne concerne pas le patient indiqué.")
    codes = updated_confidentiality(entry.confidentiality, add=add, remove=remove)
    request, objects, idgen = _request(header)
    element = _renamed(entry.element, UPDATED_ENTRY_ID, idgen)
    element.set("lid", entry.logical_id)
    for child in list(element):
        if (
            child.tag == rim("Classification")
            and child.get("classificationScheme") == ids.DE_CONFIDENTIALITY_CODE
        ):
            element.remove(child)
    objects.append(element)
    # ebRIM order inside an ExtrinsicObject: Slot*, Name, Description, VersionInfo,
    # Classification*, ExternalIdentifier*; the new codes go right before the first
    # ExternalIdentifier (or last when there is none).
    anchor = element.find(rim("ExternalIdentifier"))
    for coded in codes:
        classification = coded_classification(
            element, ids.DE_CONFIDENTIALITY_CODE, UPDATED_ENTRY_ID, coded, idgen
        )
        if anchor is not None:
            anchor.addprevious(classification)
    member = association(
        objects,
        idgen.next("Assoc"),
        ids.ASSOC_HAS_MEMBER,
        SUBMISSION_SET_ID,
        UPDATED_ENTRY_ID,
        original=True,
    )
    slot(member, "PreviousVersion", [str(entry.version)])
    return request
