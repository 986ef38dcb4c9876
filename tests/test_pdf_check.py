"""The cheap PDF check before packaging, and the hand-written sample PDF of the demo."""

from __future__ import annotations

import re

import pytest

from bridge.errors import IntakeRejected
from bridge.pdf import MAX_PDF_BYTES, check_pdf
from service.sample_pdf import make_pdf
from tests.factories import TINY_PDF

FILE = "CR_2024-01-15.pdf"


def rejected(data: bytes) -> IntakeRejected:
    with pytest.raises(IntakeRejected) as caught:
        check_pdf(data, file_name=FILE)
    assert FILE in caught.value.message_fr
    return caught.value


def test_a_complete_pdf_passes() -> None:
    check_pdf(TINY_PDF, file_name=FILE)


def test_whitespace_after_the_end_marker_is_accepted() -> None:
    check_pdf(TINY_PDF + b"\r\n\r\n", file_name=FILE)


def test_an_empty_file_is_refused() -> None:
    error = rejected(b"")
    assert error.code == "PDF_EMPTY"
    assert "Réexportez" in error.message_fr


@pytest.mark.parametrize("data", [b"PK\x03\x04 a zip file", b"<html>%%EOF", b" %PDF-1.4\n%%EOF"])
def test_a_file_that_does_not_start_with_the_pdf_signature_is_refused(data: bytes) -> None:
    error = rejected(data)
    assert error.code == "PDF_NOT_PDF"
    assert "Exportez le document au format PDF" in error.message_fr


def test_a_pdf_cut_before_its_end_marker_is_refused_as_truncated() -> None:
    cut = TINY_PDF[: TINY_PDF.rindex(b"%%EOF")]
    error = rejected(cut)
    assert error.code == "PDF_TRUNCATED"
    assert "Déposez-le à nouveau" in error.message_fr


def test_an_end_marker_far_from_the_end_does_not_count() -> None:
    # An earlier revision's %%EOF followed by a cut-off incremental update is still truncated.
    assert rejected(TINY_PDF + b"1 0 obj\n" + b"0" * 2048).code == "PDF_TRUNCATED"


def test_a_file_over_the_size_limit_is_refused_and_the_limit_is_named() -> None:
    huge = b"%PDF-1.4\n" + b"0" * (MAX_PDF_BYTES - 16) + b"\n%%EOF\n" + b"\n" * 16
    assert len(huge) > MAX_PDF_BYTES
    error = rejected(huge)
    assert error.code == "PDF_TOO_LARGE"
    assert "15 Mo" in error.message_fr


def test_a_file_exactly_at_the_size_limit_is_accepted() -> None:
    tail = b"\n%%EOF\n"
    exact = b"%PDF-1.4\n" + b"0" * (MAX_PDF_BYTES - 9 - len(tail)) + tail
    assert len(exact) == MAX_PDF_BYTES
    check_pdf(exact, file_name=FILE)


# ---------------------------------------------------------------- service.sample_pdf.make_pdf

LINES = ["Compte rendu de soins infirmiers", "Pansement (jambe gauche) \\ refait", "Hélène"]


def xref_table(pdf: bytes) -> tuple[int, list[int]]:
    """(startxref offset, object offsets listed in the table), read from the file's tail."""
    found = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", pdf)
    assert found is not None, "no startxref before %%EOF at the end"
    start = int(found.group(1))
    assert pdf[start:].startswith(b"xref")
    lines = pdf[start:].split(b"\n")
    first, count = (int(n) for n in lines[1].split())
    assert first == 0
    entries = lines[2 : 2 + count]
    assert entries[0] == b"0000000000 65535 f "
    offsets = []
    for entry in entries[1:]:
        assert len(entry) + 1 == 20, "xref entries are exactly 20 bytes with the end of line"
        offset, generation, kind = entry.split()
        assert (generation, kind) == (b"00000", b"n")
        offsets.append(int(offset))
    assert lines[2 + count] == b"trailer"
    return start, offsets


def test_make_pdf_output_passes_the_pdf_check() -> None:
    check_pdf(make_pdf(LINES), file_name=FILE)


def test_make_pdf_has_a_cross_reference_table_pointing_at_each_object() -> None:
    pdf = make_pdf(LINES)
    _, offsets = xref_table(pdf)
    assert len(offsets) == 5
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(b"%d 0 obj\n" % number)
    trailer = pdf[pdf.rindex(b"trailer") :]
    assert b"/Size 6" in trailer
    assert b"/Root 1 0 R" in trailer


def test_make_pdf_stream_length_matches_the_stream_bytes() -> None:
    pdf = make_pdf(LINES)
    found = re.search(rb"<< /Length (\d+) >>\nstream\n", pdf)
    assert found is not None
    end = pdf.index(b"\nendstream", found.end())
    assert end - found.end() == int(found.group(1))


def test_make_pdf_escapes_parentheses_and_backslashes_in_text() -> None:
    pdf = make_pdf(LINES)
    assert rb"(Pansement \(jambe gauche\) \\ refait) Tj" in pdf
    assert "(Hélène) Tj".encode("latin-1") in pdf


def test_make_pdf_of_no_lines_is_still_a_valid_pdf() -> None:
    pdf = make_pdf([])
    check_pdf(pdf, file_name=FILE)
    xref_table(pdf)


def test_the_factory_pdf_has_a_correct_cross_reference_table_too() -> None:
    _, offsets = xref_table(TINY_PDF)
    for number, offset in enumerate(offsets, start=1):
        assert TINY_PDF[offset:].startswith(b"%d 0 obj\n" % number)
