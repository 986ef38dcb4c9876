"""IHE XDM archives: what is read, and what is refused before any document is used."""

from __future__ import annotations

import io
import zipfile

import pytest

from bridge.errors import IntakeRejected
from bridge.xdm import read_xdm, unsafe_member_name
from tests.intake_formats.builders import cda_file, metadata_xml, pdf, xdm_zip


def refusal(archive: bytes) -> IntakeRejected:
    with pytest.raises(IntakeRejected) as caught:
        read_xdm(archive, file_name="envoi.zip")
    return caught.value


def test_the_documents_listed_by_metadata_are_read_with_their_unique_id() -> None:
    package = read_xdm(xdm_zip(), file_name="envoi.zip")

    [document] = package.documents
    assert package.subset == "IHE_XDM/SUBSET01"
    assert (document.mime_type, document.unique_id) == ("text/xml", "2.25.1")
    assert document.data == cda_file()


@pytest.mark.parametrize("name", [
    "../evil", "/etc/passwd", "C:/Windows/x", "IHE_XDM\\SUBSET01\\DOC", "a/../../b", "a//b",
    "nul\x00.xml", ""])
def test_member_names_that_could_leave_the_folder_are_refused(name: str) -> None:
    assert unsafe_member_name(name) is not None


def test_plain_member_names_are_accepted() -> None:
    assert unsafe_member_name("IHE_XDM/SUBSET01/DOC0001.XML") is None


def test_a_document_whose_bytes_differ_from_the_declared_hash_is_refused() -> None:
    cda = cda_file()
    altered = xdm_zip([("DOC0001.XML", cda, "text/xml")],
                      metadata=metadata_xml([("DOC0001.XML", cda, "text/xml")], declared=b"x"))

    assert refusal(altered).code == "XDM_HASH_MISMATCH"


def test_a_document_missing_from_the_archive_is_refused() -> None:
    listed = metadata_xml([("DOC0002.XML", b"<x/>", "text/xml")])

    error = refusal(xdm_zip(metadata=listed))

    assert error.code == "XDM_DOCUMENT_MISSING"
    assert "DOC0002.XML" in error.message_fr


def test_a_metadata_uri_climbing_out_is_refused() -> None:
    listed = metadata_xml([("../../DOC0001.XML", b"<x/>", "text/xml")])

    assert refusal(xdm_zip(metadata=listed)).code == "XDM_PATH_TRAVERSAL"


def test_an_archive_without_metadata_is_not_xdm() -> None:
    error = refusal(xdm_zip(metadata=b"").replace(b"METADATA.XML", b"AUTRE___.XML"))

    assert error.code == "XDM_NO_METADATA"


def test_a_pdf_document_is_read_and_its_type_kept() -> None:
    document = pdf()
    package = read_xdm(xdm_zip([("DOC0001.PDF", document, "application/pdf")]),
                       file_name="envoi.zip")

    assert [(d.mime_type, d.data) for d in package.documents] == [("application/pdf", document)]


def test_a_document_listed_twice_in_metadata_is_refused_as_it_would_be_sent_twice() -> None:
    cda = cda_file()
    twice = metadata_xml([("DOC0001.XML", cda, "text/xml"), ("doc0001.xml", cda, "text/xml")])

    error = refusal(xdm_zip([("DOC0001.XML", cda, "text/xml")], metadata=twice))

    assert error.code == "XDM_DUPLICATE_DOCUMENT"
    assert "décrit deux fois le document doc0001.xml" in error.message_fr
    assert "Rien n'a été envoyé au DMP" in error.message_fr


def _damaged_member(compression: int) -> bytes:
    """An XDM archive whose METADATA.XML member is compressed with `compression` and whose
    compressed bytes were then overwritten (a disk or transfer fault)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", metadata_xml([("DOC0001.XML", b"<x/>",
                                                                         "text/xml")]) * 20)
    data = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("IHE_XDM/SUBSET01/METADATA.XML")
    header = info.header_offset  # local header: 30 bytes, then the name and the extra field
    name_length = int.from_bytes(data[header + 26:header + 28], "little")
    extra_length = int.from_bytes(data[header + 28:header + 30], "little")
    start = header + 30 + name_length + extra_length
    data[start + 8:start + 40] = b"\xff" * 32
    return bytes(data)


def _unknown_version() -> bytes:
    """An archive whose central directory says it needs a ZIP version no reader knows."""
    data = bytearray(xdm_zip())
    entry = data.index(b"PK\x01\x02")
    data[entry + 6:entry + 8] = b"\xf4\x00"  # "version needed to extract": 24.4
    return bytes(data)


@pytest.mark.parametrize("archive", [
    pytest.param(lambda: _damaged_member(zipfile.ZIP_DEFLATED), id="damaged deflate"),
    pytest.param(lambda: _damaged_member(zipfile.ZIP_LZMA), id="damaged lzma"),
    pytest.param(lambda: _damaged_member(zipfile.ZIP_BZIP2), id="damaged bzip2"),
    pytest.param(_unknown_version, id="unknown zip version"),
])
def test_a_damaged_archive_is_refused_as_unreadable_not_a_crash(archive: object) -> None:
    """Decompressors raise their own errors (zlib.error, LZMAError…) and zipfile raises
    NotImplementedError for a version it does not know: each is a refusal with its reason."""
    assert callable(archive)
    error = refusal(archive())
    assert error.code == "XDM_UNREADABLE"
    assert "envoi.zip" in error.message_fr
