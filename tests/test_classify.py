"""The matrix applied to an author: for every national row, the codes a document gets, the
classCode derived from the typeCode, and the reasons it would wait for a person."""

from __future__ import annotations

import dataclasses

import pytest

from bridge.classify import content_type, resolve
from bridge.domain import Author
from bridge.errors import MappingRejected
from mappings.matrix_load import load_matrix
from mappings.valuesets import class_of
from tests.factories import make_author
from tests.test_matrix import GOLDEN

NATIONAL = load_matrix(region=None)

# One author per category (ES has no profession: only a configuration selects it).
AUTHORS: dict[str, Author] = {
    category: dataclasses.replace(make_author(), profession_code=profession,
                                  specialty_code=specialty)
    for category, profession, specialty in (
        ("MG", "10", "G15_10/SM54"), ("SPE", "10", "G15_10/SM04"),
        ("BIO", "10", "G15_10/SM03"), ("RAD", "10", "G15_10/SM44"),
        ("PHA", "21", "G15_21/A"), ("IDE", "60", "G15_60"), ("MK", "70", "G15_70"),
        ("SF", "50", "G15_50"), ("DEN", "40", "G15_40"),
    )
}
CASES = [(row.id, category) for row in NATIONAL.rows for category in row.categories
         if category in AUTHORS]


def test_every_category_but_es_has_an_author_fixture() -> None:
    assert set(AUTHORS) == set(NATIONAL.categories) - {"ES"}
    for category, author in AUTHORS.items():
        assert NATIONAL.category_of(author.profession_code, author.specialty_code) == category


@pytest.mark.parametrize(("row_id", "category"), CASES)
def test_each_row_gives_exactly_its_golden_codes(row_id: str, category: str) -> None:
    type_code, class_code, classeur, format_code, visibility, confirm, auto = GOLDEN[row_id]
    result = resolve(NATIONAL, AUTHORS[category], kind=row_id)
    assert result.row.id == row_id and result.category == category
    codes = result.codes
    assert codes.type_code.code == type_code
    assert codes.class_code.code == class_code
    assert result.classeur == classeur
    assert codes.format_code.code == format_code
    assert tuple(flag.code for flag in codes.visibility) == visibility
    assert codes.confidentiality.code == "N"
    assert result.auto_feed is auto
    hold_codes = {hold.code for hold in result.holds}
    assert ("CONFIRM_WITH_PATIENT" in hold_codes) is confirm
    assert ("STRUCTURED_REQUIRED" in hold_codes) is result.row.structured_required
    assert result.trace and all(isinstance(line, str) for line in result.trace)


@pytest.mark.parametrize(("row_id", "category"), CASES)
def test_the_class_code_is_always_the_one_derived_from_the_type_code(row_id: str,
                                                                     category: str) -> None:
    row = next(r for r in NATIONAL.rows if r.id == row_id)
    derived = class_of(row.type_code, row.type_system)
    expected = derived.code if derived is not None else row.class_code
    assert resolve(NATIONAL, AUTHORS[category], kind=row_id).codes.class_code.code == expected


def test_a_nurse_document_named_as_the_software_names_it() -> None:
    result = resolve(NATIONAL, AUTHORS["IDE"], kind="Fiche de soins")
    assert result.row.id == "IDE-02"
    assert result.codes.facility_type.code == "SA07"  # the author's sector
    assert result.codes.practice_setting.code == "AMBULATOIRE"


def test_a_vaccination_note_as_a_pdf_waits_for_the_structured_document() -> None:
    result = resolve(NATIONAL, AUTHORS["PHA"], kind="87273-9")
    assert [hold.code for hold in result.holds] == ["STRUCTURED_REQUIRED"]
    assert "VAC-NOTE" in result.holds[0].message_fr
    assert resolve(NATIONAL, AUTHORS["PHA"], kind="87273-9", is_pdf=False).holds == ()


def test_the_source_can_ask_to_confirm_with_the_patient() -> None:
    result = resolve(NATIONAL, AUTHORS["IDE"], kind="IDE-02", source_confirm=True)
    assert [hold.code for hold in result.holds] == ["CONFIRM_WITH_PATIENT"]
    assert "dmp-bridge release" in result.holds[0].message_fr


def test_an_unknown_kind_is_refused_with_what_this_author_may_send() -> None:
    with pytest.raises(MappingRejected) as caught:
        resolve(NATIONAL, AUTHORS["MK"], kind="CR opératoire")
    assert caught.value.code == "KIND_UNKNOWN"
    assert "Bilan diagnostic kinésithérapique" in caught.value.message_fr


def test_an_author_outside_every_category_is_refused() -> None:
    odd = dataclasses.replace(make_author(), profession_code="86", specialty_code="G15_86")
    with pytest.raises(MappingRejected) as caught:
        resolve(NATIONAL, odd, kind="IDE-02")
    assert caught.value.code == "MATRIX_NO_CATEGORY"


def test_the_regional_overlay_is_what_the_service_uses() -> None:
    bretagne = load_matrix()
    result = resolve(bretagne, AUTHORS["IDE"], kind="compte rendu de tournée")
    assert result.row.id == "IDE-02"
    assert "bretagne" in result.row.origin


def test_the_content_type_is_the_author_sector() -> None:
    assert content_type(AUTHORS["IDE"]).code == "SA07"


def test_the_professional_can_add_restrictions_never_remove_the_row_s() -> None:
    row_hidden = resolve(NATIONAL, AUTHORS["SPE"], kind="SPE-05",
                         source_visibility=["MASQUE_PS"]).codes.visibility
    # Always in one order (MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX), so
    # the same restrictions give the same metadata whatever the channel's order.
    assert [flag.code for flag in row_hidden] == ["MASQUE_PS", "INVISIBLE_PATIENT"]
    asked = resolve(NATIONAL, AUTHORS["IDE"], kind="IDE-02",
                    source_visibility=["INVISIBLE_PATIENT", "INVISIBLE_PATIENT"])
    assert [flag.code for flag in asked.codes.visibility] == ["INVISIBLE_PATIENT"]
    assert asked.codes.visibility[0].system == "1.2.250.1.213.1.1.4.13"
