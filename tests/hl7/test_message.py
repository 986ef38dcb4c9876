"""Our nurse MDM^T02 (real PDF, valid INS, PRT SB with an RPPS) and its malformed variants.

Each malformed variant gets the code documented in bridge/hl7v2 (ERR-3, ERR-5, MSA-1).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bridge.folder_document import accept_pair
from bridge.hl7v2 import (
    AckCode,
    Action,
    AppCode,
    ErrorCode,
    HL7Rejected,
    build_ack,
    idempotency_key,
    parse_message,
    read_header,
    source_ref,
)
from bridge.hl7v2.segments import STANDARD, split_segments
from bridge.sidecar import parse_sidecar
from mappings.matrix_load import load_matrix
from service.sample_pdf import make_pdf
from tests.factories import make_clinical_document
from tests.hl7.messages import (
    PDF,
    PRT_SB,
    RPPS,
    doc_obx,
    encode,
    flag,
    msh,
    nurse_mdm,
    pid,
    replace_segment,
    seg,
)

MATRIX = load_matrix()
NOW = dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC)


def refusal(data: bytes) -> HL7Rejected:
    with pytest.raises(HL7Rejected) as caught:
        parse_message(data, matrix=MATRIX)
    return caught.value


def test_the_reference_fixture_passes_the_sidecar_and_the_folder_checks() -> None:
    doc = parse_message(encode(nurse_mdm()), matrix=MATRIX)
    assert doc.kind == "pdf" and doc.content == PDF
    request = parse_sidecar(doc.sidecar_json, file_name="hl7.json")
    assert request.patient.identity_status.value == "QUAL"
    assert request.patient.given_names == ("DOMINIQUE", "MARIE-LOUISE")
    assert request.patient.used_family_name == "ÉPOUSE-TROIS"
    assert request.author.rpps == RPPS and request.author.profession_code == "60"
    assert request.author.structure_id == "499700366240007"
    assert request.kind == "11506-3"
    assert request.date == dt.datetime(2026, 11, 21, 9, 30,
                                       tzinfo=dt.timezone(dt.timedelta(hours=1)))
    again = accept_pair(doc.content, doc.sidecar_json, pdf_name="hl7.pdf",
                        sidecar_name="hl7.json", matrix=MATRIX)
    assert again == request
    assert doc.flags == {"MASQUE_PS": False, "INVISIBLE_PATIENT": True, "DESTDMP": True}
    assert doc.action is Action.INITIAL


def test_sidecar_json_is_the_sidecar_format_exactly() -> None:
    sidecar = json.loads(parse_message(encode(nurse_mdm())).sidecar_json)
    assert set(sidecar) == {"patient", "document", "author"}
    assert set(sidecar["author"]) == {"rpps", "family_name", "given_name", "profession",
                                      "specialty", "structure_id", "structure_name", "sector"}
    assert sidecar["author"]["sector"] == "SA07"  # HL7 has no field for it: the default


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_any_segment_terminator_is_accepted(sep: str) -> None:
    assert parse_message(encode(nurse_mdm(), sep=sep)).content == PDF


def test_base64_wrapped_over_lines_is_joined() -> None:
    segments = nurse_mdm()
    obx = doc_obx()
    head, data = obx.split("Base64^")
    wrapped = head + "Base64^" + "\r".join(data[i:i + 76] for i in range(0, len(data), 76))
    assert parse_message(encode(replace_segment(segments, "OBX", wrapped))).content == PDF


def test_a_document_wrapped_over_a_million_lines_is_joined_whole() -> None:
    # One base64 character per line (a 1.1 MB PDF): appending each line to a growing string
    # made this take over 30 s (quadratic); the pieces are now joined once (linear).
    long_pdf = make_pdf([f"Ligne {n} du compte rendu de soins infirmiers" for n in range(20_000)])
    head, data = doc_obx(long_pdf).split("Base64^")
    wrapped = head + "Base64^" + "\n".join(data)
    assert len(data) > 1_400_000

    doc = parse_message(encode(replace_segment(nurse_mdm(), "OBX", wrapped), sep="\n"))

    assert doc.content == long_pdf
    assert doc.flags == {"MASQUE_PS": False, "INVISIBLE_PATIENT": True, "DESTDMP": True}


def test_each_line_not_starting_a_segment_continues_the_previous_one_trimmed() -> None:
    lines = ["MSH|^~\\&|A", *(["  x "] * 1_000), "PID|1", "", "  ", "OBX|1|TX|", " fin "]

    segments = split_segments("\r".join(lines), STANDARD)

    assert [(s.name, s.sequence) for s in segments] == [("MSH", 1), ("PID", 1), ("OBX", 1)]
    assert segments[0].fields == ("MSH", "|", "^~\\&", "A" + "x" * 1_000)
    assert segments[2].fields == ("OBX", "1", "TX", "fin")


@pytest.mark.parametrize(("charset", "codec"), [("8859/15", "iso-8859-15"),
                                                ("8859/1", "latin-1"), ("", "utf-8"),
                                                ("", "iso-8859-15")])
def test_charsets_are_read_as_declared_and_the_ack_answers_in_the_same(
        charset: str, codec: str) -> None:
    data = encode(nurse_mdm(charset=charset), encoding=codec)
    doc = parse_message(data)
    assert json.loads(doc.sidecar_json)["author"]["given_name"] == "Hélène"
    bad = refusal(encode(replace_segment(nurse_mdm(charset=charset), "PID", pid(ids=""))
                         , encoding=codec))
    ack = build_ack(read_header(data), bad, now=NOW, control_id="1", data=data)
    assert ack is not None
    assert "(PID-3) sont absents" in ack.decode(codec)


# -------------------------------------------------------------------------- malformed variants

def _cda(extra_prolog: bytes = b"") -> bytes:
    from bridge.cda import build_cda
    cda = build_cda(make_clinical_document())
    return cda.replace(b"?>", b"?>" + extra_prolog, 1) if extra_prolog else cda


XXE = (b'<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>')
BOMB = (b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>')


@pytest.mark.parametrize(("variant", "error", "app", "ack", "where"), [
    ("wrong charset bytes", ErrorCode.OTHER, None, AckCode.AE, "MSH^1^18"),
    ("unknown charset", ErrorCode.TABLE_VALUE, None, AckCode.AE, "MSH^1^18"),
    ("bad base64", ErrorCode.DATA_TYPE, None, AckCode.AE, "OBX^1^5^1^5"),
    ("truncated base64", ErrorCode.DATA_TYPE, None, AckCode.AE, "OBX^1^5^1^5"),
    ("not a document", ErrorCode.DATA_TYPE, None, AckCode.AE, "OBX^1^5^1^5"),
    ("truncated pdf", ErrorCode.DATA_TYPE, None, AckCode.AE, "OBX^1^5^1^5"),
    ("XXE in the CDA", ErrorCode.APPLICATION, None, AckCode.AE, "OBX^1^5^1^5"),
    ("entity bomb in the CDA", ErrorCode.APPLICATION, None, AckCode.AE, "OBX^1^5^1^5"),
    ("missing PID-3", ErrorCode.REQUIRED_FIELD, None, AckCode.AE, "PID^1^3"),
    ("PID-3 without INS", ErrorCode.APPLICATION, AppCode.INS_MISSING, AckCode.AE, "PID^1^3"),
    ("INS with a wrong key", ErrorCode.DATA_TYPE, None, AckCode.AE, "PID^1^3"),
    ("missing PID-32", ErrorCode.REQUIRED_FIELD, None, AckCode.AE, "PID^1^32"),
    ("unknown PID-32", ErrorCode.TABLE_VALUE, None, AckCode.AE, "PID^1^32"),
    ("no birth date", ErrorCode.APPLICATION, AppCode.INS_INCOMPLETE, AckCode.AE, "PID^1^5"),
    ("CDA of another patient", ErrorCode.APPLICATION, AppCode.INS_MISMATCH, AckCode.AE,
     "PID^1^3"),
    ("missing PID", ErrorCode.SEGMENT_SEQUENCE, None, AckCode.AE, "PID^1"),
    ("two documents in an MDM", ErrorCode.CARDINALITY, None, AckCode.AE, "OBX^5^5"),
    ("ORC-1 against the event", ErrorCode.TABLE_VALUE, None, AckCode.AE, "ORC^1^1"),
    ("no author", ErrorCode.REQUIRED_FIELD, None, AckCode.AE, "PRT^1"),
    ("ADELI instead of RPPS", ErrorCode.DATA_TYPE, None, AckCode.AE, "PRT^1^5^1^1"),
    ("kind unknown to the matrix", ErrorCode.TABLE_VALUE, None, AckCode.AE, "OBX^1^3"),
    ("DESTDMP=N", ErrorCode.APPLICATION, None, AckCode.AE, "OBX^1"),
    ("empty MSH-10", ErrorCode.REQUIRED_FIELD, None, AckCode.AE, "MSH^1^10"),
    ("unsupported event", ErrorCode.EVENT, None, AckCode.AR, "MSH^1^9^1^2"),
    ("unsupported processing id", ErrorCode.PROCESSING_ID, None, AckCode.AR, "MSH^1^11"),
    ("unsupported version", ErrorCode.VERSION, None, AckCode.AR, "MSH^1^12"),
    ("no MSH", ErrorCode.SEGMENT_SEQUENCE, None, AckCode.AE, "MSH^1"),
])
def test_each_malformed_variant_gets_its_documented_code(
        variant: str, error: ErrorCode, app: AppCode | None, ack: AckCode, where: str) -> None:
    exc = refusal(_variant(variant))
    assert (exc.error, exc.app_code, exc.ack_code) == (error, app, ack), exc.message_fr
    assert exc.location is not None and exc.location.erl() == where
    assert exc.message_fr.endswith(".") and exc.code == f"HL7_{int(app or error)}"


def _variant(name: str) -> bytes:
    s = nurse_mdm()
    if name == "wrong charset bytes":
        return encode(s, encoding="latin-1")  # declared UNICODE UTF-8
    if name == "unknown charset":
        return encode(nurse_mdm(charset="UNICODE UTF-16"))
    obx_variants = {
        "bad base64": "JVBERi0xLjQK$$$",
        "truncated base64": "JVBERi0xLjQKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA",
        "not a document": "RG9jdW1lbnQgbWVkY2lhbCBhdSBmb3JtYXQgQ0RBIG5pdmVhdSAx",
        "truncated pdf": PDF[: len(PDF) // 2],
        "XXE in the CDA": _cda(XXE),
        "entity bomb in the CDA": _cda(BOMB),
        "CDA of another patient": _cda().replace(b"279035121518989", b"180017502108893"),
    }
    if name in obx_variants:
        return encode(replace_segment(s, "OBX", doc_obx(obx_variants[name])))
    segment_variants: dict[str, tuple[str, str | None]] = {
        "missing PID-3": ("PID", pid(ids="")),
        "PID-3 without INS": ("PID", pid(ids="000123^^^CAB-LILAS&1.2.250.1.999&ISO^PI")),
        "INS with a wrong key": ("PID", pid().replace("279035121518989", "279035121518988")),
        "missing PID-32": ("PID", pid(status="")),
        "unknown PID-32": ("PID", pid(status="SUPER")),
        "no birth date": ("PID", pid().replace("|19790328|", "||")),
        "missing PID": ("PID", None),
        "ORC-1 against the event": ("ORC", seg("ORC", {1: "CA"})),
        "no author": ("PRT", None),
        "ADELI instead of RPPS": ("PRT", PRT_SB.replace(f"8{RPPS}", "0751234567")),
        "kind unknown to the matrix": ("OBX", doc_obx(code="18748-4")),
        "DESTDMP=N": ("OBX", flag(4, "DESTDMP", "N")),
        "empty MSH-10": ("MSH", msh("")),
        "unsupported event": ("MSH", msh(type_="MDM^T01^MDM_T01")),
        "unsupported processing id": ("MSH", msh(processing="X")),
        "unsupported version": ("MSH", msh(version="2.1")),
    }
    if name == "DESTDMP=N":
        return encode(replace_segment(s, "OBX", flag(4, "DESTDMP", "N"), nth=4))
    if name == "two documents in an MDM":
        return encode([*s, doc_obx()])
    if name == "no MSH":
        return encode(s[1:])
    target, new = segment_variants[name]
    return encode(replace_segment(s, target, new))


def test_author_falls_back_to_txa_5_but_still_needs_a_structure() -> None:
    s = replace_segment(nurse_mdm(), "PRT", None)
    s = replace_segment(s, "TXA", seg("TXA", {1: "1", 2: "11506-3", 3: "TEXT",
                                              4: "20261121093000", 5: f"8{RPPS}^SOIGNANTE^Léa"}))
    exc = refusal(encode(s))
    assert exc.error is ErrorCode.REQUIRED_FIELD
    assert "PRT-6" in exc.message_fr  # the profession is the first part still missing


def test_delete_and_replace_requests_are_recognised() -> None:
    t04 = nurse_mdm(type_="MDM^T04^MDM_T02")
    t04 = replace_segment(t04, "ORC", seg("ORC", {1: "CA"}))
    t04 = replace_segment(t04, "OBX", doc_obx(status="D"))
    t04 = replace_segment(t04, "TXA", seg("TXA", {1: "1", 2: "11506-3", 4: "20261121093000",
                                                  13: "1.2.250.1.999.1.41"}))
    doc = parse_message(encode(t04))
    assert (doc.action, doc.replaces_id) == (Action.DELETE, "1.2.250.1.999.1.41")
    t10 = replace_segment(nurse_mdm(type_="MDM^T10^MDM_T02"), "ORC", None)
    t10 = replace_segment(t10, "OBX", doc_obx(status="C"))
    assert refusal(encode(t10)).location.erl() == "TXA^1^13"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------- ACKs

def _ack_lines(data: bytes, exc: HL7Rejected | None) -> list[str] | None:
    ack = build_ack(read_header(data), exc, now=NOW, control_id="ACK1", data=data)
    return None if ack is None else ack.decode("utf-8").rstrip("\r").split("\r")


def test_original_mode_aa_echoes_msh_10_and_swaps_sender_and_receiver() -> None:
    lines = _ack_lines(encode(nurse_mdm("MSG-42")), None)
    assert lines is not None
    assert lines[0] == ("MSH|^~\\&|DMP-BRIDGE|Cabinet des Lilas|LOGICIEL-IDE|Cabinet des Lilas|"
                        "20261121093000+0000||ACK^T02^ACK|ACK1|P|2.6|||||FRA|UNICODE UTF-8")
    assert lines[1:] == ["MSA|AA|MSG-42"]


def test_err_8_escapes_delimiters_of_the_french_message() -> None:
    exc = HL7Rejected("a|b^c&d~e\\f", error=ErrorCode.OTHER)
    lines = _ack_lines(encode(nurse_mdm()), exc)
    assert lines is not None
    assert lines[2].split("|")[8] == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"


@pytest.mark.parametrize(("mode", "ok", "error"), [
    ("AL", "CA", "CE"), ("ER", None, "CE"), ("SU", "CA", None), ("NE", None, None),
])
def test_enhanced_mode_follows_msh_15(mode: str, ok: str | None, error: str | None) -> None:
    data = encode(nurse_mdm(accept_ack=mode))
    positive = _ack_lines(data, None)
    negative = _ack_lines(data, HL7Rejected("x.", error=ErrorCode.DATA_TYPE))
    resend = _ack_lines(data, HL7Rejected("x.", error=ErrorCode.APPLICATION, resend=True))
    assert (positive[1].split("|")[1] if positive else None) == ok
    assert (negative[1].split("|")[1] if negative else None) == error
    if resend is not None:
        assert resend[1].split("|")[1] == "CR"


def test_garbage_gets_an_ae_with_empty_msa_2() -> None:
    exc = refusal(b"hello")
    ack = build_ack(None, exc, now=NOW, control_id="X", data=b"hello")
    assert ack is not None
    assert ack.split(b"\r")[1] == b"MSA|AE|"
    assert b"100^Segment sequence error" in ack


def test_idempotency_key_depends_on_sender_and_msh_10_only() -> None:
    one = read_header(encode(nurse_mdm("A")))
    same = read_header(encode(replace_segment(nurse_mdm("A"), "PID", pid(status="VALI"))))
    other = read_header(encode(nurse_mdm("B")))
    assert idempotency_key(one) == idempotency_key(same) != idempotency_key(other)
    assert source_ref(one) == "A@LOGICIEL-IDE/Cabinet des Lilas"


def test_the_metadmpmss_restrictions_travel_with_the_document() -> None:
    from tests.hl7.messages import encode, flag, nurse_mdm, replace_segment

    message = replace_segment(nurse_mdm("V-1"), "OBX", flag(2, "MASQUE_PS", "Y"), nth=2)
    message = [*message, flag(5, "INVISIBLE_REP_LEGAUX", "Y")]
    document = parse_message(encode(message))
    assert document.request is not None
    assert document.request.visibility == (
        "MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")
