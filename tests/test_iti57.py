"""ITI-57 Update Document Set: availability changes and visibility metadata updates (TD3.3)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from lxml import etree

from bridge import xds_ids as ids
from bridge.domain import OID_CONFIDENTIALITY, OID_VISIBILITY, Coded
from bridge.ebrim import build_submit_objects
from bridge.ebrim_parts import SubmissionSetHeader
from bridge.iti18 import AvailabilityStatus, RegistryEntry, read_entry
from bridge.iti57 import (
    UpdateRefused,
    VisibilityFlag,
    build_availability_update,
    build_metadata_update,
    updated_confidentiality,
)
from bridge.schemas import SchemaName, validation_errors
from tests.factories import CONTENT_TYPE_CABINET, make_author, make_patient, make_submission

RIM = f"{{{ids.NS_RIM}}}"
NS = {"rim": ids.NS_RIM}
ENTRY_UUID = "urn:uuid:5a0c1d2e-0000-4000-8000-000000000001"
LOGICAL_ID = "urn:uuid:5a0c1d2e-0000-4000-8000-000000000000"
NORMAL = Coded("N", "Normal", OID_CONFIDENTIALITY)


def header() -> SubmissionSetHeader:
    return SubmissionSetHeader(
        unique_id="2.25.4242", source_id="1.2.250.1.999.1.1",
        submission_time=dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), author=make_author(),
        patient=make_patient().ins, content_type=CONTENT_TYPE_CABINET,
    )


def registered_entry(version: str = "2", status: str = AvailabilityStatus.APPROVED.value,
                     ) -> RegistryEntry:
    """Document01 of an ITI-41 as the registry gives it back in LeafClass form."""
    request = build_submit_objects(make_submission())
    entry = copy.deepcopy(request.find(f".//{RIM}ExtrinsicObject[@id='Document01']"))
    assert entry is not None
    entry.set("id", ENTRY_UUID)
    entry.set("lid", LOGICAL_ID)
    entry.set("status", status)
    for child in entry:
        for attribute in ("classifiedObject", "registryObject"):
            if child.get(attribute):
                child.set(attribute, ENTRY_UUID)
        if child.get("id"):
            suffix = child.get("id", "").zfill(12)[-12:]
            child.set("id", f"urn:uuid:9f0c1d2e-0000-4000-8000-{suffix}")
    version_info = etree.Element(f"{RIM}VersionInfo", versionName=version)
    entry.find(f"{RIM}Classification").addprevious(version_info)
    return read_entry(entry)


def slot_values(element: etree._Element, name: str) -> list[str]:
    path = f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()"
    return [str(v) for v in element.xpath(path, namespaces=NS)]


@pytest.mark.parametrize(("original", "new"), [
    (AvailabilityStatus.APPROVED, AvailabilityStatus.DELETED),
    (AvailabilityStatus.APPROVED, AvailabilityStatus.ARCHIVED),
    (AvailabilityStatus.ARCHIVED, AvailabilityStatus.APPROVED),
])
def test_an_availability_change_is_a_valid_update_association(
        original: AvailabilityStatus, new: AvailabilityStatus) -> None:
    request = build_availability_update(header(), entry_uuid=ENTRY_UUID, original=original,
                                        new=new)
    assert validation_errors(request, SchemaName.EBRS_LCM) == []
    associations = request.findall(f".//{RIM}Association")
    update, member = associations
    assert update.get("associationType") == ids.ASSOC_UPDATE_AVAILABILITY
    assert (update.get("sourceObject"), update.get("targetObject")) == ("SubmissionSet01",
                                                                        ENTRY_UUID)
    assert slot_values(update, "OriginalStatus") == [original.value]
    assert slot_values(update, "NewStatus") == [new.value]
    assert member.get("associationType") == ids.ASSOC_HAS_MEMBER
    assert (member.get("sourceObject"), member.get("targetObject")) == ("SubmissionSet01",
                                                                        update.get("id"))
    assert slot_values(member, "SubmissionSetStatus") == ["Original"]
    package = request.find(f".//{RIM}RegistryPackage")
    assert package is not None and slot_values(package, "submissionTime") == ["20260302090000"]
    schemes = {e.get("identificationScheme") for e in package.iter(f"{RIM}ExternalIdentifier")}
    assert schemes == {ids.SS_UNIQUE_ID, ids.SS_SOURCE_ID, ids.SS_PATIENT_ID}


def test_a_forbidden_status_change_is_refused_in_french() -> None:
    with pytest.raises(UpdateRefused, match="« supprimé » à l'état « actif »"):
        build_availability_update(header(), entry_uuid=ENTRY_UUID,
                                  original=AvailabilityStatus.DELETED,
                                  new=AvailabilityStatus.APPROVED)


def test_a_visibility_update_resends_the_metadata_with_new_flags() -> None:
    entry = registered_entry(version="2")
    assert (entry.entry_uuid, entry.logical_id, entry.version) == (ENTRY_UUID, LOGICAL_ID, 2)
    request = build_metadata_update(header(), entry, add=[VisibilityFlag.MASQUE_PS,
                                                          VisibilityFlag.INVISIBLE_PATIENT])
    assert validation_errors(request, SchemaName.EBRS_LCM) == []
    updated = request.find(f".//{RIM}ExtrinsicObject")
    assert updated is not None
    assert (updated.get("id"), updated.get("lid"), updated.get("status")) == (
        "DocumentEntry01", LOGICAL_ID, None)
    assert updated.find(f"{RIM}VersionInfo") is None
    again = read_entry(updated)
    assert [c.code for c in again.confidentiality] == ["N", "MASQUE_PS", "INVISIBLE_PATIENT"]
    assert again.unique_id == entry.unique_id and again.hash == entry.hash
    # Every child now belongs to the new symbolic entry, under fresh symbolic ids.
    for child in updated:
        assert child.get("classifiedObject", "DocumentEntry01") == "DocumentEntry01"
        assert child.get("registryObject", "DocumentEntry01") == "DocumentEntry01"
        assert not (child.get("id") or "").startswith("urn:uuid:")
    member = request.find(f".//{RIM}Association")
    assert member is not None
    assert (member.get("sourceObject"), member.get("targetObject")) == ("SubmissionSet01",
                                                                        "DocumentEntry01")
    assert slot_values(member, "PreviousVersion") == ["2"]
    assert slot_values(member, "SubmissionSetStatus") == ["Original"]


def test_flags_are_added_and_removed_keeping_the_confidentiality_level_first() -> None:
    masked = Coded("MASQUE_PS", "Masqué", OID_VISIBILITY)
    legal = VisibilityFlag.INVISIBLE_REPRESENTANTS_LEGAUX
    assert updated_confidentiality([NORMAL, masked], remove=[VisibilityFlag.MASQUE_PS],
                                   add=[legal]) == (NORMAL, legal.coded)
    assert updated_confidentiality([NORMAL], add=[VisibilityFlag.MASQUE_PS]) == (
        NORMAL, VisibilityFlag.MASQUE_PS.coded)
    with pytest.raises(UpdateRefused, match="ajouté et retiré"):
        updated_confidentiality([NORMAL], add=[legal], remove=[legal])
    with pytest.raises(UpdateRefused, match="niveau de confidentialité"):
        updated_confidentiality([masked], add=[legal])


def test_only_an_approved_entry_of_this_patient_changes_visibility() -> None:
    archived = registered_entry(status=AvailabilityStatus.ARCHIVED.value)
    with pytest.raises(UpdateRefused, match="archivé"):
        build_metadata_update(header(), archived, add=[VisibilityFlag.MASQUE_PS])
    other = SubmissionSetHeader(**{**header().__dict__,
                                   "patient": make_patient().ins.__class__(
                                       "184127645108946", make_patient().ins.oid)})
    with pytest.raises(UpdateRefused, match="patient"):
        build_metadata_update(other, registered_entry(), add=[VisibilityFlag.MASQUE_PS])
