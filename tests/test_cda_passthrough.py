"""A CDA received from the source is packaged as it is: its bytes, its id, its header."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid

import pytest
from lxml import etree

from bridge import xds_ids as ids
from bridge.cda import build_cda
from bridge.cda_header import read_cda_header
from bridge.cda_passthrough import (
    build_passthrough_package,
    looks_like_cda,
    passthrough_codes,
    read_passthrough_header,
)
from bridge.classify import resolve
from bridge.errors import MappingRejected
from bridge.packaging import Package
from bridge.schemas import SchemaName, validation_errors
from bridge.sidecar import DocumentRequest, parse_sidecar
from connectors.software_credentials import SoftwareCredentials
from mappings.matrix_load import load_matrix
from tests.factories import PARIS_WINTER, make_clinical_document, make_sidecar_dict
from tests.transaction_helpers import inline_xop

NS = {"rim": ids.NS_RIM}
NOW = dt.datetime(2024, 1, 15, 10, 35, 0, tzinfo=PARIS_WINTER)
CDA = build_cda(make_clinical_document())
ROOT = make_clinical_document().unique_id


def request() -> DocumentRequest:
    return parse_sidecar(json.dumps(make_sidecar_dict()).encode(), file_name="CR.json")


def package_of(credentials: SoftwareCredentials, cda: bytes) -> Package:
    req = request()
    header = read_cda_header(cda, file_name="CR.xml",
                             identity_status=req.patient.identity_status)
    resolution = resolve(load_matrix(), req.author, kind=req.kind, is_pdf=header.level == 1)
    return build_passthrough_package(
        req, cda, header=header, codes=passthrough_codes(header, resolution),
        submission_id=uuid.uuid4(), signature_id=uuid.uuid4(), now=NOW, source_id="2.25.1",
        certificate=credentials.signing_certificate, sign=credentials.sign)


def slot(body: etree._Element, name: str) -> list[str]:
    found = body.xpath(f"//rim:ExtrinsicObject[1]/rim:Slot[@name='{name}']/rim:ValueList/"
                       "rim:Value/text()", namespaces=NS)
    assert isinstance(found, list)
    return [str(v) for v in found]


def test_the_cda_is_sent_byte_for_byte_under_its_own_id(credentials: SoftwareCredentials) -> None:
    package = package_of(credentials, CDA)
    assert package.passthrough and package.document_unique_ids == (ROOT,)
    assert package.parts[0][1] == CDA
    assert slot(package.body, "hash") == [hashlib.sha1(CDA).hexdigest()]
    assert slot(package.body, "size") == [str(len(CDA))]
    assert slot(package.body, "creationTime") == ["20240115093000"]
    assert slot(package.body, "languageCode") == ["fr-FR"]
    signature = package.parts[1][1]
    assert f"urn:oid:{ROOT}".encode() in signature
    assert Package.from_bytes(package.to_bytes()).passthrough


def test_the_body_with_documents_inlined_is_valid_xds_b(credentials: SoftwareCredentials) -> None:
    package = package_of(credentials, CDA)
    body = inline_xop(package.body, dict(package.parts))
    assert validation_errors(body, SchemaName.XDS_B) == []


def test_a_cda_id_with_an_extension_is_refused_in_french(
        credentials: SoftwareCredentials) -> None:
    cda = CDA.replace(f'root="{ROOT}"'.encode(), f'root="{ROOT}" extension="42"'.encode(), 1)
    with pytest.raises(MappingRejected, match="extension") as caught:
        package_of(credentials, cda)
    assert caught.value.code == "CDA_ID_EXTENSION"


def test_a_cda_of_another_type_than_the_row_is_refused(credentials: SoftwareCredentials) -> None:
    other = dataclasses.replace(make_clinical_document().codes.type_code, code="11488-4")
    cda = build_cda(make_clinical_document(
        codes=dataclasses.replace(make_clinical_document().codes, type_code=other)))
    with pytest.raises(MappingRejected) as caught:
        package_of(credentials, cda)
    assert caught.value.code == "CDA_TYPE_MISMATCH"


def test_only_a_clinical_document_is_passed_through() -> None:
    assert looks_like_cda(b"\xef\xbb\xbf \n" + CDA)
    assert not looks_like_cda(b"%PDF-1.7")
    assert read_passthrough_header(b"<html/>", request(), file_name="x") is None
    header = read_passthrough_header(CDA, request(), file_name="x")
    assert header is not None and header.unique_id == ROOT
