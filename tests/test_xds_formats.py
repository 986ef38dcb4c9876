"""HL7 v2 data types written in XDS slots (spec/dmp-protocol.md §3.4) and CDA timestamps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from bridge.xds_formats import (
    author_specialty,
    cda_ts,
    dtm,
    hl7_date,
    hl7_escape,
    source_patient_info,
    xcn_ps,
    xon,
)
from tests.factories import make_author, make_patient

PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))


def test_dtm_is_utc_whatever_the_local_offset() -> None:
    assert dtm(dt.datetime(2024, 7, 1, 0, 30, 5, tzinfo=PARIS_SUMMER)) == "20240630223005"
    assert dtm(dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.UTC)) == "20240115093000"


def test_cda_timestamp_keeps_the_local_offset() -> None:
    assert cda_ts(dt.datetime(2024, 7, 1, 0, 30, 5, tzinfo=PARIS_SUMMER)) == "20240701003005+0200"
    assert cda_ts(dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.UTC)) == "20240115093000+0000"


@pytest.mark.parametrize("formatter", [dtm, cda_ts])
def test_a_naive_datetime_is_refused(formatter: Callable[[dt.datetime], str]) -> None:
    with pytest.raises(ValueError, match="naive"):
        formatter(dt.datetime(2024, 1, 15, 10, 30))


def test_hl7_date() -> None:
    assert hl7_date(dt.date(1979, 3, 28)) == "19790328"


def test_authorperson_is_an_xcn_with_the_ps_idnat_and_the_rpps_authority() -> None:
    author = make_author(family_name="DURANT", given_name="Romuald", rpps="01234567890")
    assert xcn_ps(author) == "801234567890^DURANT^Romuald^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"


def test_authorinstitution_is_an_xon_with_the_struct_idnat_last() -> None:
    author = make_author(structure_name="CABINET MEDICAL DR DURANT", structure_id="401234567890009")
    assert xon(author) == (
        "CABINET MEDICAL DR DURANT^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^401234567890009"
    )


def test_author_specialty_carries_code_display_and_tre_a02() -> None:
    assert author_specialty(make_author()) == "G15_60^Infirmier^1.2.250.1.213.1.1.4.5"


def test_source_patient_info_gives_birth_name_first_given_name_birth_date_and_sex() -> None:
    assert source_patient_info(make_patient()) == [
        "PID-5|PAT-TROIS^DOMINIQUE^^^^^L",
        "PID-7|19790328",
        "PID-8|F",
    ]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("A^B", "A\\S\\B"),
        ("Soins & Santé", "Soins \\T\\ Santé"),
        ("a~b", "a\\R\\b"),
        ("a|b", "a\\F\\b"),
        ("a\\b", "a\\E\\b"),
        ("\\S\\", "\\E\\S\\E\\"),  # an existing escape-looking text is not taken as an escape
        ("Hélène Dubœuf-Müller", "Hélène Dubœuf-Müller"),
    ],
)
def test_hl7_escaping_of_delimiters(raw: str, escaped: str) -> None:
    assert hl7_escape(raw) == escaped


def test_free_text_with_delimiters_cannot_shift_components() -> None:
    author = make_author(
        family_name="D'ARC^TEST", given_name="Zoé&Co", structure_name="Soins & Santé ^ Cie"
    )
    person = xcn_ps(author)
    assert person == (
        "810101010101^D'ARC\\S\\TEST^Zoé\\T\\Co^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    )
    assert len(person.split("^")) == 13  # XCN up to XCN.13, whatever the name contains
    institution = xon(author)
    assert institution.startswith("Soins \\T\\ Santé \\S\\ Cie^")
    assert institution.split("^")[-1] == author.structure_id


def test_source_patient_info_escapes_names() -> None:
    patient = make_patient(birth_family_name="O^NEIL", given_names=("ÉLISE&", "ANNE"))
    assert source_patient_info(patient)[0] == "PID-5|O\\S\\NEIL^ÉLISE\\T\\^^^^^L"
