"""The JSON sidecar of an exported PDF: shape checked at the border, every problem in French."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from bridge.domain import IdentityStatus, Ins, InsOid, Sex
from bridge.errors import IdentityRejected, IntakeRejected
from bridge.sidecar import MAX_SIDECAR_BYTES, DocumentRequest, parse_sidecar
from tests.factories import TEST_INS, make_sidecar_dict

FILE = "CR_2024-01-15.json"
ENGLISH_PYDANTIC = ("Input should", "String should", "List should", "Field required",
                    "Extra inputs", "validation error")

Mutation = Callable[[dict[str, Any]], None]


def encode(sidecar: dict[str, Any]) -> bytes:
    return json.dumps(sidecar, ensure_ascii=False, indent=2).encode("utf-8")


def parse(sidecar: dict[str, Any]) -> DocumentRequest:
    return parse_sidecar(encode(sidecar), file_name=FILE)


def changed(mutate: Mutation) -> bytes:
    sidecar = make_sidecar_dict()
    mutate(sidecar)
    return encode(sidecar)


def rejected(data: bytes) -> IntakeRejected:
    with pytest.raises(IntakeRejected) as caught:
        parse_sidecar(data, file_name=FILE)
    return caught.value


def test_a_complete_sidecar_becomes_a_document_request() -> None:
    request = parse(make_sidecar_dict())
    assert request.kind == "cr-soins-infirmiers"
    assert request.title == "Compte rendu de soins infirmiers"
    assert request.date == dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.UTC)
    assert request.date.utcoffset() == dt.timedelta(hours=1)
    patient = request.patient
    assert patient.ins == Ins(TEST_INS, InsOid.NIR_TEST)
    assert patient.identity_status is IdentityStatus.QUAL
    assert patient.given_names == ("DOMINIQUE", "MARIE-LOUISE")
    assert patient.birth_date == dt.date(1979, 3, 28)
    assert patient.sex is Sex.F
    assert patient.birthplace_code == "51215"
    author = request.author
    assert (author.rpps, author.ps_idnat) == ("10101010101", "810101010101")
    assert (author.profession_code, author.specialty_code) == ("60", "G15_60")
    assert author.specialty_display == "Infirmier"
    assert (author.structure_id, author.sector_code) == ("499700366240007", "SA07")


def test_names_are_upper_cased_and_the_kind_is_kept_as_the_software_wrote_it() -> None:
    sidecar = make_sidecar_dict()
    sidecar["patient"]["birth_family_name"] = "Pat-Trois"
    sidecar["author"]["family_name"] = "Soignante"
    sidecar["document"]["kind"] = " CR-Soins-Infirmiers "
    request = parse(sidecar)
    assert request.patient.birth_family_name == "PAT-TROIS"
    assert request.author.family_name == "SOIGNANTE"
    assert request.kind == "CR-Soins-Infirmiers"


def test_a_doctor_without_specialty_gets_general_medicine() -> None:
    sidecar = make_sidecar_dict()
    sidecar["author"]["profession"] = "10"
    author = parse(sidecar).author
    assert (author.profession_code, author.specialty_code) == ("10", "G15_10/SM54")


def test_a_byte_order_mark_written_by_windows_editors_is_accepted() -> None:
    request = parse_sidecar(b"\xef\xbb\xbf" + encode(make_sidecar_dict()), file_name=FILE)
    assert request.patient.ins.matricule == TEST_INS


def test_invalid_json_is_refused_with_the_line_and_column_of_the_error() -> None:
    error = rejected(b'{\n  "patient": ,\n}')
    assert error.code == "SIDECAR_JSON"
    assert "ligne 2, colonne 14" in error.message_fr
    assert "Corrigez-le ou réexportez-le" in error.message_fr


def test_a_sidecar_nested_deeper_than_the_parser_goes_is_refused_not_crashing() -> None:
    """Within the size limit, "[[[[…]]]]" makes Python's JSON parser recurse past its limit
    (RecursionError): that is a refusal like any bad JSON, never an error of the bridge."""
    depth = MAX_SIDECAR_BYTES // 2 - 1
    error = rejected(b"[" * depth + b"]" * depth)
    assert error.code == "SIDECAR_JSON"
    assert "imbriquées" in error.message_fr and "réexportez-le" in error.message_fr


def test_a_number_longer_than_python_converts_is_refused_not_crashing() -> None:
    """An integer of more than 4300 digits makes `json.loads` raise a plain ValueError."""
    error = rejected(changed(lambda s: s["document"].update(title=None)).replace(
        b'"title": null', b'"title": ' + b"9" * 4301))
    assert error.code == "SIDECAR_JSON"
    assert "nombre bien trop long" in error.message_fr


@pytest.mark.parametrize(("where", "text", "code_point"), [
    ("document.title", "Compte rendu\x00", "U+0000"),
    ("patient.given_names.1", "Marie\x07", "U+0007"),
    ("author.structure_name", "Cabinet \ud800", "U+D800"),  # a lone "\ud800" JSON escape
])
def test_a_text_with_a_character_xml_cannot_carry_is_refused_by_its_key(
        where: str, text: str, code_point: str) -> None:
    """Every text of a sidecar may reach the CDA or the XDS metadata: a control character or
    a lone surrogate would make the document unbuildable later; refused at intake instead,
    naming the field and the character."""
    def put(sidecar: dict[str, Any]) -> None:
        section, _, key = where.partition(".")
        key, _, index = key.partition(".")
        if index:
            sidecar[section][key] = ["Anne", text]
        else:
            sidecar[section][key] = text

    sidecar = make_sidecar_dict()
    put(sidecar)
    error = rejected(json.dumps(sidecar).encode("ascii"))  # "\ud800" stays a JSON escape
    assert error.code == "SIDECAR_INVALID"
    assert f"« {where} »" in error.message_fr and code_point in error.message_fr
    assert "corrigez-le dans le logiciel" in error.message_fr


def test_a_sidecar_not_in_utf8_is_refused() -> None:
    data = encode(make_sidecar_dict()).decode("utf-8").encode("latin-1")  # "Hélène" in Latin-1
    error = rejected(data)
    assert error.code == "SIDECAR_JSON"
    assert "UTF-8" in error.message_fr


def test_a_missing_field_is_named_by_its_dotted_key() -> None:
    error = rejected(changed(lambda s: s["patient"].pop("sex")))
    assert error.code == "SIDECAR_INVALID"
    assert "« patient.sex »" in error.message_fr
    assert "manquant : ajoutez-le" in error.message_fr


def test_an_unknown_key_is_refused_so_that_a_typo_is_not_silently_ignored() -> None:
    error = rejected(changed(lambda s: s["author"].update(secteur="SA07")))
    assert error.code == "SIDECAR_INVALID"
    assert "« author.secteur » n'est pas une clé connue" in error.message_fr


@pytest.mark.parametrize("rpps", ["1010101010", "810101010101", "1010101010A", ""])
def test_an_rpps_that_is_not_11_digits_is_refused(rpps: str) -> None:
    error = rejected(changed(lambda s: s["author"].update(rpps=rpps)))
    assert error.code == "SIDECAR_INVALID"
    assert "« author.rpps »" in error.message_fr


def test_the_kind_is_any_label_the_feeding_matrix_will_judge() -> None:
    # Whether "radiographie" is a kind this author may send is the matrix's call
    # (tests/test_folder_document.py), not the sidecar's.
    assert parse_sidecar(changed(lambda s: s["document"].update(kind="radiographie")),
                         file_name=FILE).kind == "radiographie"
    error = rejected(changed(lambda s: s["document"].update(kind="   ")))
    assert error.code == "KIND_MISSING"


@pytest.mark.parametrize("date", ["2024-01-15T10:30:00", "2024-01-15"])
def test_a_document_date_without_time_zone_is_refused(date: str) -> None:
    error = rejected(changed(lambda s: s["document"].update(date=date)))
    assert error.code == "DATE_NO_TZ"
    assert "fuseau horaire" in error.message_fr


def test_an_unknown_profession_is_refused() -> None:
    error = rejected(changed(lambda s: s["author"].update(profession="99")))
    assert error.code == "PROFESSION_UNKNOWN"
    assert "« 99 »" in error.message_fr


def test_a_specialty_of_another_profession_is_refused() -> None:
    error = rejected(changed(lambda s: s["author"].update(specialty="G15_10/SM54")))
    assert error.code == "SPECIALTY_UNKNOWN"
    assert "« G15_10/SM54 »" in error.message_fr
    assert "Infirmier" in error.message_fr


def test_an_unknown_activity_sector_is_refused() -> None:
    error = rejected(changed(lambda s: s["author"].update(sector="SA99")))
    assert error.code == "SECTOR_UNKNOWN"
    assert "« SA99 »" in error.message_fr


def test_a_sidecar_larger_than_64_kib_is_refused_before_parsing() -> None:
    data = encode(make_sidecar_dict())
    padded = data[:-1] + b" " * (MAX_SIDECAR_BYTES - len(data) + 1) + b"}"
    assert len(padded) == MAX_SIDECAR_BYTES + 1
    assert rejected(padded).code == "SIDECAR_TOO_LARGE"
    assert parse_sidecar(padded[:-2] + b"}", file_name=FILE).kind == "cr-soins-infirmiers"


def test_an_ins_with_a_wrong_key_is_refused_by_the_identity_rules() -> None:
    data = changed(lambda s: s["patient"].update(ins=TEST_INS[:13] + "88"))
    with pytest.raises(IdentityRejected) as caught:
        parse_sidecar(data, file_name=FILE)
    assert caught.value.code == "INS_KEY"


# Each way a sidecar can be wrong, and the hint that tells the user what to do about it.
CASES: dict[str, tuple[bytes, str, str]] = {
    "invalid json": (b'{"patient": }', "SIDECAR_JSON", "Corrigez-le ou réexportez-le"),
    "shape": (changed(lambda s: s["patient"].pop("sex")), "SIDECAR_INVALID", "ajoutez-le"),
    "kind": (changed(lambda s: s["document"].update(kind=" ")), "KIND_MISSING", "indiquez-le"),
    "naive date": (changed(lambda s: s["document"].update(date="2024-01-15T10:30:00")),
                   "DATE_NO_TZ", "par exemple"),
    "profession": (changed(lambda s: s["author"].update(profession="99")), "PROFESSION_UNKNOWN",
                   "codes TRE_G15"),
    "specialty": (changed(lambda s: s["author"].update(specialty="G15_10/SM54")),
                  "SPECIALTY_UNKNOWN", "G15_60"),
    "sector": (changed(lambda s: s["author"].update(sector="SA99")), "SECTOR_UNKNOWN",
               "par exemple SA07"),
    "too large": (b" " * (MAX_SIDECAR_BYTES + 1), "SIDECAR_TOO_LARGE", "64 Ko"),
    # Year 1 or 9999 with an offset cannot even be put in UTC: an export error, said as such.
    "implausible date": (changed(lambda s: s["document"].update(date="0001-01-01T00:00:00+14:00")),
                         "DATE_IMPLAUSIBLE", "corrigez la date dans le logiciel"),
}
def test_each_kind_of_problem_has_its_own_code() -> None:
    codes = [code for _, code, _ in CASES.values()]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("case", list(CASES))
def test_every_rejection_names_the_file_and_says_what_to_do(case: str) -> None:
    data, code, hint = CASES[case]
    error = rejected(data)
    assert error.code == code
    assert FILE in error.message_fr
    assert hint in error.message_fr


def test_a_bad_rpps_message_gives_the_expected_format() -> None:
    error = rejected(changed(lambda s: s["author"].update(rpps="1010101010")))
    assert "11 chiffres" in error.message_fr


def test_a_sidecar_that_is_not_a_json_object_gets_a_meaningful_message() -> None:
    error = rejected(b"[]")
    assert error.code == "SIDECAR_INVALID"
    assert "«  »" not in error.message_fr


BAD_SHAPES: dict[str, Mutation] = {
    "status not allowed": lambda s: s["patient"].update(identity_status="QUALIFIEE"),
    "sex not allowed": lambda s: s["patient"].update(sex="X"),
    "birth date format": lambda s: s["patient"].update(birth_date="28/03/1979"),
    "document date garbage": lambda s: s["document"].update(date="lundi"),
    "ins as number": lambda s: s["patient"].update(ins=279035121518989),
    "no given names": lambda s: s["patient"].update(given_names=[]),
    "given names as string": lambda s: s["patient"].update(given_names="DOMINIQUE"),
    "empty name": lambda s: s["author"].update(family_name="  "),
    "title too long": lambda s: s["document"].update(title="x" * 201),
    "birthplace pattern": lambda s: s["patient"].update(birthplace_code="5121"),
    "structure lower case": lambda s: s["author"].update(structure_id="abcde"),
    "author not an object": lambda s: s.update(author="MARTIN"),
    "missing section": lambda s: s.pop("document"),
}


@pytest.mark.parametrize("mutation", list(BAD_SHAPES), ids=list(BAD_SHAPES))
def test_shape_problems_are_explained_in_french_without_pydantic_english(mutation: str) -> None:
    error = rejected(changed(BAD_SHAPES[mutation]))
    assert error.code == "SIDECAR_INVALID"
    assert error.message_fr.startswith(f"Le fichier {FILE} est incomplet ou invalide : « ")
    for english in ENGLISH_PYDANTIC:
        assert english not in error.message_fr


def test_visibility_restrictions_asked_by_the_professional_are_kept() -> None:
    data = changed(lambda s: s["document"].update(
        visibility=["INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"]))
    assert parse_sidecar(data, file_name=FILE).visibility == (
        "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")
    error = rejected(changed(lambda s: s["document"].update(visibility=["CACHE"])))
    assert error.code == "SIDECAR_INVALID"
