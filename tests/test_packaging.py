"""One document request becomes a signed ITI-41 package: CDA, XAdES, ebRIM (DESIGN.md §2, §4)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import re
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
from lxml import etree
from signxml import XMLVerifier  # type: ignore[attr-defined]

from bridge import xds_ids as ids
from bridge.classify import resolve
from bridge.packaging import MintedIds, Package, build_package, oid_from_uuid
from bridge.schemas import SchemaName, validation_errors
from bridge.sidecar import DocumentRequest, parse_sidecar
from bridge.xades import DS
from bridge.xmlsafe import parse_xml
from connectors.software_credentials import SoftwareCredentials
from mappings.matrix_load import load_matrix
from service.sample_pdf import make_pdf
from service.test_pki import pki_layout
from tests.factories import PARIS_WINTER, make_sidecar_dict

NS = {"xdsb": ids.NS_XDSB, "rim": ids.NS_RIM, "xop": ids.NS_XOP, "ds": DS}
PDF = make_pdf(["Compte rendu de soins infirmiers", "Pansement refait, plaie propre."])
NOW = dt.datetime(2024, 1, 15, 10, 35, 0, tzinfo=PARIS_WINTER)
IDS = MintedIds(uuid.UUID("6f1c0b7e-7f1a-4b7e-9f42-1d2b3c4d5e6f"),
                uuid.UUID("0a2b4c6d-8e0f-4a1b-8c3d-5e7f9a1b3c5d"),
                uuid.UUID("f0e1d2c3-b4a5-4968-8776-655443322110"))
SOURCE_ID = "1.2.250.1.999.1.1"
OID_SYNTAX = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def request_from_sidecar(identity_status: str = "QUAL") -> DocumentRequest:
    sidecar = make_sidecar_dict()
    sidecar["patient"]["identity_status"] = identity_status
    return parse_sidecar(json.dumps(sidecar).encode(), file_name="CR.json")


def package_for(credentials: SoftwareCredentials, request: DocumentRequest) -> Package:
    codes = resolve(load_matrix(), request.author, kind=request.kind).codes
    return build_package(request, PDF, codes=codes, ids=IDS, now=NOW, source_id=SOURCE_ID,
                         certificate=credentials.signing_certificate, sign=credentials.sign)


@pytest.fixture(scope="module")
def package(credentials: SoftwareCredentials) -> Package:
    return package_for(credentials, request_from_sidecar())


def part(package: Package, content_id: str) -> bytes:
    return dict(package.parts)[content_id]


def cda_bytes(package: Package) -> bytes:
    return package.parts[0][1]


def signature_bytes(package: Package) -> bytes:
    return package.parts[1][1]


def xpath(node: etree._Element, path: str) -> list[etree._Element]:
    found = node.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    return [e for e in found if isinstance(e, etree._Element)]


def with_inline_documents(package: Package) -> etree._Element:
    """The body as the schema sees it once XOP is resolved: each Include becomes base64 text."""
    body = copy.deepcopy(package.body)
    for include in xpath(body, "//xop:Include"):
        document = include.getparent()
        assert document is not None
        href = include.get("href", "")
        assert href.startswith("cid:")
        document.remove(include)
        document.text = base64.b64encode(part(package, unquote(href[4:]))).decode("ascii")
    return body


def test_the_package_has_a_cda_part_and_a_signature_part(package: Package) -> None:
    assert [cid for cid, _ in package.parts] == [f"doc-{IDS.document}@dmp-bridge",
                                                 f"sig-{IDS.signature}@dmp-bridge"]


def test_the_cda_part_is_valid_cda_r2(package: Package) -> None:
    cda = parse_xml(cda_bytes(package), huge_text=True)
    assert validation_errors(cda, SchemaName.CDA) == []


def test_the_cda_part_wraps_the_exact_pdf(package: Package) -> None:
    cda = parse_xml(cda_bytes(package), huge_text=True)
    text = cda.xpath("//hl7:nonXMLBody/hl7:text/text()", namespaces={"hl7": "urn:hl7-org:v3"})
    assert isinstance(text, list)
    assert base64.b64decode("".join(str(t) for t in text)) == PDF


def test_every_xop_include_resolves_to_a_part(package: Package) -> None:
    hrefs = [unquote(i.get("href", "")[4:]) for i in xpath(package.body, "//xop:Include")]
    assert hrefs == [cid for cid, _ in package.parts]


def test_the_body_with_documents_inlined_is_valid_xds_b(package: Package) -> None:
    assert validation_errors(with_inline_documents(package), SchemaName.XDS_B) == []


def test_the_xades_manifest_digest_matches_the_cda_part(package: Package) -> None:
    signature = parse_xml(signature_bytes(package))
    (digest,) = xpath(signature, f"//ds:Manifest/ds:Reference[@URI='urn:oid:"
                                 f"{package.document_unique_id}']/ds:DigestValue")
    expected = base64.b64encode(hashlib.sha256(cda_bytes(package)).digest()).decode("ascii")
    assert digest.text == expected
    (submission_ref,) = xpath(signature, "//ds:Manifest/ds:Reference[1]")
    assert submission_ref.get("URI") == f"urn:oid:{package.submission_unique_id}"


def test_the_xades_signature_verifies(package: Package, pki_dir: Path) -> None:
    cert = pki_layout(pki_dir).org_sign.cert.read_text("ascii")
    XMLVerifier().verify(signature_bytes(package), x509_cert=cert, expect_references=2)


def test_the_metadata_hash_and_size_describe_the_cda_part(package: Package) -> None:
    (entry,) = xpath(package.body, "//rim:ExtrinsicObject[@id='Document01']")
    slots = {s.get("name"): s.findtext(f"{{{ids.NS_RIM}}}ValueList/{{{ids.NS_RIM}}}Value")
             for s in xpath(entry, "rim:Slot")}
    assert slots["hash"] == hashlib.sha1(cda_bytes(package)).hexdigest()
    assert slots["size"] == str(len(cda_bytes(package)))


def test_the_unique_ids_come_from_the_minted_uuids(package: Package) -> None:
    assert package.document_unique_id == f"2.25.{IDS.document.int}"
    assert package.submission_unique_id == f"2.25.{IDS.submission.int}"


def test_a_package_survives_the_store_byte_for_byte(package: Package) -> None:
    stored = package.to_bytes()
    restored = Package.from_bytes(stored)
    assert restored.to_bytes() == stored
    assert restored.parts == package.parts
    assert etree.tostring(restored.body) == etree.tostring(package.body)
    assert (restored.document_unique_id, restored.submission_unique_id) == (
        package.document_unique_id, package.submission_unique_id)


def test_rebuilding_with_the_same_ids_and_time_gives_the_same_bytes(
        credentials: SoftwareCredentials, package: Package) -> None:
    assert package_for(credentials, request_from_sidecar()).to_bytes() == package.to_bytes()


@pytest.mark.parametrize(
    "value",
    [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID(int=10**20),
     *[uuid.uuid5(uuid.NAMESPACE_OID, str(n)) for n in range(5)]],
)
def test_an_oid_from_a_uuid_is_short_and_well_formed(value: uuid.UUID) -> None:
    oid = oid_from_uuid(value)
    assert len(oid) <= 64
    assert OID_SYNTAX.match(oid), oid
    assert oid.startswith("2.25.")
