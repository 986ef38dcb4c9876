"""The INS matricule and its OID (DESIGN.md §5): 13-character NIR + key 97 − (NIR mod 97)."""

from __future__ import annotations

import pytest

from bridge.domain import Ins, InsOid
from bridge.errors import IdentityRejected
from bridge.ins import nir_key, parse_ins
from tests.factories import TEST_INS

OID_NIR_TEST = "1.2.250.1.213.1.4.10"


def expected_key(nir13: str) -> int:
    """The key as the référentiel INS defines it, computed here independently of bridge.ins."""
    digits = nir13.replace("2A", "19").replace("2B", "18")
    return 97 - int(digits) % 97


def with_key(nir13: str) -> str:
    return f"{nir13}{expected_key(nir13):02d}"


def rejection(matricule: str, oid: str = OID_NIR_TEST) -> IdentityRejected:
    with pytest.raises(IdentityRejected) as caught:
        parse_ins(matricule, oid)
    return caught.value


def test_the_ans_sample_ins_is_accepted_with_the_test_nir_oid() -> None:
    assert parse_ins(TEST_INS, OID_NIR_TEST) == Ins("279035121518989", InsOid.NIR_TEST)


def test_the_sample_key_is_97_minus_the_nir_modulo_97() -> None:
    assert nir_key(TEST_INS[:13]) == expected_key(TEST_INS[:13]) == 89


@pytest.mark.parametrize("oid", [o.value for o in InsOid])
def test_every_known_ins_oid_is_accepted(oid: str) -> None:
    assert parse_ins(TEST_INS, oid).oid == InsOid(oid)


@pytest.mark.parametrize(
    "typed", ["2 79 03 51 215 189 89", " 279035121518989 ", "279 035 121 518 989"]
)
def test_spaces_typed_in_the_matricule_are_tolerated_and_removed(typed: str) -> None:
    assert parse_ins(typed, OID_NIR_TEST).matricule == TEST_INS


def test_surrounding_spaces_in_the_oid_are_tolerated() -> None:
    assert parse_ins(TEST_INS, f" {OID_NIR_TEST} ").oid is InsOid.NIR_TEST


def test_a_wrong_key_is_refused_with_ins_key_and_a_french_message() -> None:
    error = rejection(TEST_INS[:13] + "88")
    assert error.code == "INS_KEY"
    assert "clé du matricule INS est fausse" in error.message_fr
    assert "INSi" in error.message_fr  # says what to do


@pytest.mark.parametrize(
    "matricule",
    [
        TEST_INS[:-1],  # 14 characters
        TEST_INS + "0",  # 16 characters
        "",
        "27903512151898A",  # a letter in the key
        "2790351215189O9",  # letter O typed for a zero
        "A79035121518989",  # a letter where the sex digit goes
        "2790351215-8989",
    ],
)
def test_a_malformed_matricule_is_refused_with_ins_format(matricule: str) -> None:
    error = rejection(matricule)
    assert error.code == "INS_FORMAT"
    assert "doit comporter 15 caractères" in error.message_fr


@pytest.mark.parametrize("oid", ["1.2.250.1.213.1.4.7", "1.2.250.1.213.1.4.12", "", "INS-NIR"])
def test_an_unknown_oid_is_refused_with_ins_oid(oid: str) -> None:
    error = rejection(TEST_INS, oid)
    assert error.code == "INS_OID"
    assert "n'est pas reconnu" in error.message_fr


@pytest.mark.parametrize("nir13", ["185052A004123", "292122B033001"])
def test_corsican_departements_count_as_19_and_18_for_the_key(nir13: str) -> None:
    matricule = with_key(nir13)
    assert nir_key(nir13) == expected_key(nir13)
    assert parse_ins(matricule, OID_NIR_TEST).matricule == matricule


@pytest.mark.parametrize("nir13", ["185052A004123", "292122B033001"])
def test_a_corsican_nir_with_a_key_computed_on_other_digits_is_refused(nir13: str) -> None:
    # The key computed as if 2A/2B were 20 is a plausible mistake of a practice software.
    as_if_20 = 97 - int(nir13.replace("2A", "20").replace("2B", "20")) % 97
    assert as_if_20 != expected_key(nir13)
    assert rejection(f"{nir13}{as_if_20:02d}").code == "INS_KEY"


def test_a_lower_case_corsican_code_is_accepted_and_normalised() -> None:
    matricule = with_key("185052A004123")
    assert parse_ins(matricule.lower(), OID_NIR_TEST).matricule == matricule
