"""HPRIM Santé records and HPRIM Net letters: what is read, and the precise French reasons."""

from __future__ import annotations

import datetime as dt

import pytest

from bridge.errors import IntakeRejected
from bridge.hprim import parse_hprim_net, parse_hprim_sante
from bridge.hprim.text import MAX_HPRIM_BYTES
from tests.intake_formats.builders import hprim_net, hprim_sante

# Real record shapes quoted in the spec (B.2.1), synthetic values.
SPEC_LINES = (
    "H|~^\\&|URG062.HPR||133002782~CASALTA||ORU|||MARURG~Marignane Urgence||P|H2.0|200410291528\n"
    "P|1|398|B1042100871||GAULLE~MARECHAL|PIT|19370325|F||28 RUE DE LA PAIX~~PARIS~~75000\n"
    "OBR|0001|041030MA1045~041030MA1045||N^PLQ^F^TP^TCK|R||200410300928|200410300928|||N\n"
    "OBX|0001|NM|N    020~globules blancs..............:||5960|/mm3|vr : 4 a  10000||||||\n"
    "OBX|1|NM|OT1~TGO ADVIA~L||16|UI/l|10 - 40|N|||F|||201204281438|BIO\n"
    "A|ue HP~L|0468638395||||||||F|||||||VBIO\n"
    "L|1\n"
)


def reason(data: bytes, parse: object = parse_hprim_sante) -> IntakeRejected:
    with pytest.raises(IntakeRejected) as caught:
        parse(data, file_name="F.HPR")  # type: ignore[operator]
    return caught.value


def test_the_spec_lines_give_header_patient_request_and_results() -> None:
    parsed = parse_hprim_sante(SPEC_LINES.encode(), file_name="URG062.HPR")

    assert (parsed.file_name, parsed.sender_id, parsed.sender_name) == (
        "URG062.HPR", "133002782", "CASALTA")
    assert (parsed.message_type, parsed.processing, parsed.version) == ("ORU", "P", "H2.0")
    assert parsed.created == dt.datetime(2004, 10, 29, 15, 28)
    [patient] = parsed.patients
    assert (patient.family_name, patient.given_names, patient.birth_name) == (
        "GAULLE", ("MARECHAL",), "PIT")
    assert (patient.birth_date, patient.sex) == (dt.date(1937, 3, 25), "F")
    assert parsed.collected == dt.datetime(2004, 10, 30, 9, 28)
    assert [(r.code, r.value, r.unit) for r in parsed.results] == [
        ("N    020", "5960", "/mm3"), ("OT1", "16", "UI/l")]


def test_an_a_line_continues_the_previous_record_even_mid_word() -> None:
    parsed = parse_hprim_sante(hprim_sante(), file_name="echo-0042.hpr")

    # "BIO~Laborat" + "oire TEST~L|…": the continuation is glued without a separator.
    assert parsed.results[-1].status == "F"
    assert parsed.files == ("echo-0042-cr.pdf",)


def test_a_record_cut_into_hundreds_of_thousands_of_a_lines_is_joined_whole() -> None:
    # One character per `A|` line, near the 2 MiB limit: appending each line to a growing
    # string made this take seconds (quadratic); the pieces are now joined once (linear).
    text = "".join(chr(ord("a") + n % 26) for n in range(520_000))
    cut = "\r".join(f"A|{char}" for char in text)
    data = (f"H|~^\\&|F.HPR||LAB||ORU\rP|1||||DUPONT~JEAN\rOBR|1\r"
            f"OBX|1|TX|CR~Compte rendu||\r{cut}||||||F\rA|||VBIO\rL|1\r").encode()
    assert len(data) < MAX_HPRIM_BYTES

    parsed = parse_hprim_sante(data, file_name="F.HPR")

    [result] = parsed.results
    assert (result.code, result.label, result.value) == ("CR", "Compte rendu", text)
    assert result.status == "F"
    assert parsed.patients[0].family_name == "DUPONT"


@pytest.mark.parametrize(("delimiters", "names"), [
    ("~^\\&", "DUPONT~JEAN"), ("\\^&~", "DUPONT\\JEAN"), ("^~\\&", "DUPONT^JEAN")])
def test_delimiters_are_read_from_h2_positionally(delimiters: str, names: str) -> None:
    data = f"H|{delimiters}|F.HPR||LAB||ORU\rP|1||||{names}||19800101|M\rL|1\r".encode()

    [patient] = parse_hprim_sante(data, file_name="F.HPR").patients

    assert (patient.family_name, patient.given_names) == ("DUPONT", ("JEAN",))


def test_a_file_without_its_end_record_is_refused_as_truncated_with_the_line() -> None:
    cut = hprim_sante().replace(b"L|1\r\n", b"")

    refusal = reason(cut)

    assert refusal.code == "HPRIM_TRUNCATED"
    assert "tronqué" in refusal.message_fr and "ligne 6" in refusal.message_fr


@pytest.mark.parametrize(("data", "words"), [
    (b"P|1|x\rL|1\r", "en-tête"),
    (b"H|~~~~|F\rL|1\r", "séparateurs"),
    (b"H|~^\\&|F\rH|~^\\&|G\rL|1\r", "second en-tête"),
    (b"H|~^\\&|F\rceci n'est pas un enregistrement\rL|1\r", "ligne 2"),
    (b"H|~^\\&|F\rL|1\rP|1\r", "fin"),
    (b"H|~^\\&|F\rP|1||||N~P||1937-03-25\rL|1\r", "P-7"),
    (b"H|~^\\&|F\rOBX|1|NM|X||1\rL|1\r", "OBR"),
])
def test_a_malformed_file_gets_a_precise_french_reason(data: bytes, words: str) -> None:
    refusal = reason(data)

    assert refusal.code == "HPRIM_MALFORMED"
    assert words in refusal.message_fr


def test_a_fic_result_pointing_outside_the_folder_is_refused() -> None:
    data = b"H|~^\\&|F\rP|1\rOBR|1\rOBX|1|FIC|CR||..\\..\\secret.pdf~PDF\rL|1\r"

    refusal = reason(data)

    assert refusal.code == "HPRIM_FILE_PATH"
    assert "chemin" in refusal.message_fr


def test_latin1_text_is_read_and_utf16_is_refused_as_a_wrong_charset() -> None:
    latin1 = "H|~^\\&|F\rP|1||||HÉLÈNE~ZOÉ\rL|1\r".encode("latin-1")
    assert parse_hprim_sante(latin1, file_name="F").patients[0].family_name == "HÉLÈNE"

    refusal = reason(SPEC_LINES.encode("utf-16"))

    assert refusal.code == "HPRIM_CHARSET"
    assert "UTF-8" in refusal.message_fr


def test_the_solabio_letter_with_its_vendor_pre_line() -> None:
    letter = parse_hprim_net(hprim_net(), file_name="lettre.hpm")

    assert (letter.family_name, letter.given_name) == ("DUPONT", "JEAN")
    assert (letter.birth_date, letter.exam_date) == (dt.date(1950, 1, 1), dt.date(2026, 6, 24))
    assert letter.nir == "150017600000000"
    assert (letter.sender_code, letter.receiver_name) == ("SOLABIO", "MARTIN PAUL")
    assert [r.value for r in letter.results] == ["14.8", "Diabète"]
    assert "Compte-rendu d'examens biologiques" in letter.text
    assert letter.complete


def test_a_cr_only_latin1_text_letter_with_html_is_read() -> None:
    lines = ["0001", "TEST", "ZOÉ", "1 rue", "", "35000 RENNES", "01/02/03", "", "REF",
             "24/06/2026", "LABO      Laboratoire", "MEDECIN   Dr Test",
             "Bonjour,<br />r&eacute;sultats normaux."]
    letter = parse_hprim_net("\r".join(lines).encode("cp1252"), file_name="l.txt")

    assert letter.given_name == "ZOÉ"
    assert letter.birth_date == dt.date(2003, 2, 1)
    assert letter.text == "Bonjour,\nrésultats normaux."
    assert letter.results == () and not letter.complete


def test_a_cut_letter_is_refused_as_truncated() -> None:
    head_only = b"\n".join(hprim_net().split(b"\n")[:6])
    open_block = hprim_net().split(b"****FIN****")[0]

    assert reason(head_only, parse_hprim_net).code == "HPRIM_TRUNCATED"
    refusal = reason(open_block, parse_hprim_net)
    assert refusal.code == "HPRIM_TRUNCATED"
    assert "****LAB****" in refusal.message_fr
