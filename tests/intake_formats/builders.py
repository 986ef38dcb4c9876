"""Files legacy software drops, built from the project's own builders (no real patient data).

- `cda_file()`: a CDA R2 N1 for the test patient by the nurse (bridge.cda, tests.factories);
- `xdm_zip()`: an IHE XDM archive: IHE_XDM/SUBSET01/METADATA.XML (ebRIM SubmitObjectsRequest
  listing each document with its URI, size and SHA-1 slots) + the documents;
- `hl7_file()`: the reference nurse MDM^T02 with a PDF (tests.hl7.messages);
- `hprim_sante()` / `hprim_net()`: the fixtures of tests/fixtures/intake.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from bridge.cda import build_cda
from service.sample_pdf import make_pdf
from tests.factories import make_clinical_document
from tests.hl7.messages import encode, nurse_mdm

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "intake"
ANS = Path(__file__).resolve().parent.parent / "fixtures" / "ans"
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
UNIQUE_ID_SCHEME = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
       b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>\n')


def pdf(text: str = "Compte rendu") -> bytes:
    return make_pdf([text, "Document de test, aucune donnée réelle."])


def cda_file(**overrides: object) -> bytes:
    return build_cda(make_clinical_document(**overrides))


def hl7_file(sep: str = "\n") -> bytes:
    return encode(nurse_mdm(), sep=sep)


def hprim_sante() -> bytes:
    return (FIXTURES / "echo-0042.hpr").read_bytes()


def hprim_net() -> bytes:
    return (FIXTURES / "14-hprim-net-header-solabio.hpm").read_bytes()


def _slot(name: str, value: str) -> str:
    return f'<rim:Slot name="{name}"><rim:ValueList><rim:Value>{value}</rim:Value>' \
           "</rim:ValueList></rim:Slot>"


def metadata_xml(documents: list[tuple[str, bytes, str]], *,
                 declared: bytes | None = None) -> bytes:
    """METADATA.XML listing `documents` (uri, bytes, mimeType); `declared` lies about the
    first document's content (for the hash check)."""
    entries = []
    for index, (uri, data, mime) in enumerate(documents, start=1):
        content = declared if declared is not None and index == 1 else data
        entries.append(
            f'<rim:ExtrinsicObject id="Document{index:02d}" mimeType="{mime}" '
            'objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">'
            + _slot("URI", uri) + _slot("size", str(len(content)))
            + _slot("hash", hashlib.sha1(content, usedforsecurity=False).hexdigest())
            + f'<rim:ExternalIdentifier id="ei{index}" registryObject="Document{index:02d}" '
            f'identificationScheme="{UNIQUE_ID_SCHEME}" value="2.25.{index}"/>'
            "</rim:ExtrinsicObject>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<lcm:SubmitObjectsRequest xmlns:lcm='
            f'"{NS_LCM}" xmlns:rim="{NS_RIM}"><rim:RegistryObjectList>' + "".join(entries)
            + "</rim:RegistryObjectList></lcm:SubmitObjectsRequest>\n").encode()


def xdm_zip(documents: list[tuple[str, bytes, str]] | None = None, *,
            metadata: bytes | None = None,
            extra: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    """An XDM archive; by default one CDA N1 (DOC0001.XML)."""
    documents = documents if documents is not None else [("DOC0001.XML", cda_file(),
                                                           "text/xml")]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.TXT", "Archive IHE XDM de test.\r\n")
        archive.writestr("INDEX.HTM", "<html><body>Index</body></html>")
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML",
                         metadata if metadata is not None else metadata_xml(documents))
        for uri, data, _mime in documents:
            archive.writestr(f"IHE_XDM/SUBSET01/{uri}", data)
        for name, data in extra:
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_bomb(size: int = 64 * 1024 * 1024) -> bytes:
    """An XDM-shaped archive whose document inflates `size` bytes of zeros from ~64 KiB."""
    buffer = io.BytesIO()
    zeros = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML",
                         metadata_xml([("DOC0001.XML", b"<x/>", "text/xml")]))
        with archive.open("IHE_XDM/SUBSET01/DOC0001.XML", "w", force_zip64=True) as member:
            for _ in range(size // len(zeros)):
                member.write(zeros)
    return buffer.getvalue()
