"""ITI-41 with several documents of one patient, and the replacement (TD2.1, RPLC) package."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

import pytest
from lxml import etree

from bridge import xds_ids as ids
from bridge.packaging import (
    LotDocument,
    LotRejected,
    Package,
    Replacement,
    build_lot_package,
    derived_set_id,
    oid_from_uuid,
    set_id_for,
)
from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import parse_xml
from connectors.software_credentials import SoftwareCredentials
from tests.factories import make_patient
from tests.transaction_helpers import NOW, inline_xop, make_lot_document, make_request

RIM = f"{{{ids.NS_RIM}}}"
HL7 = "{urn:hl7-org:v3}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
REPLACED_ENTRY = "urn:uuid:0b7e1c2a-0000-4000-8000-00000000abcd"


def package(credentials: SoftwareCredentials, documents: Sequence[LotDocument]) -> Package:
    return build_lot_package(
        documents, submission_id=uuid.uuid4(), signature_id=uuid.uuid4(), now=NOW,
        source_id="1.2.250.1.999.1.1", certificate=credentials.signing_certificate,
        sign=credentials.sign,
    )


def cda_of(pkg: Package, index: int) -> etree._Element:
    return parse_xml(pkg.parts[index][1], huge_text=True)


def test_a_lot_of_three_documents_is_one_valid_submission_set(
        credentials: SoftwareCredentials) -> None:
    documents = [make_lot_document() for _ in range(3)]
    pkg = package(credentials, documents)
    assert validation_errors(inline_xop(pkg.body, dict(pkg.parts)), SchemaName.XDS_B) == []
    entries = pkg.body.findall(f".//{RIM}ExtrinsicObject")
    assert [e.get("id") for e in entries] == ["Document01", "Document02", "Document03",
                                              "Signature01"]
    assert pkg.document_unique_ids == tuple(oid_from_uuid(d.document_id) for d in documents)
    members = [a.get("targetObject") for a in pkg.body.iter(f"{RIM}Association")
               if a.get("associationType") == ids.ASSOC_HAS_MEMBER]
    assert members == ["Document01", "Document02", "Document03", "Signature01"]
    # One XAdES manifest covers the set and the three documents.
    signature = parse_xml(pkg.parts[-1][1])
    references = [r.get("URI") for r in signature.iter(f"{DS}Manifest")
                  for r in r.iter(f"{DS}Reference")]
    assert references == [f"urn:oid:{pkg.submission_unique_id}",
                          *(f"urn:oid:{uid}" for uid in pkg.document_unique_ids)]
    # The stored form keeps every uniqueId.
    assert Package.from_bytes(pkg.to_bytes()).document_unique_ids == pkg.document_unique_ids


def test_a_lot_mixing_patients_is_refused_in_french(credentials: SoftwareCredentials) -> None:
    other = make_patient(ins=dataclasses.replace(make_patient().ins, matricule="184127645108946"))
    documents = [make_lot_document(), make_lot_document(request=make_request(patient=other))]
    with pytest.raises(LotRejected, match="même patient"):
        package(credentials, documents)
    with pytest.raises(LotRejected, match="au moins un document"):
        package(credentials, [])


def test_a_replacement_points_at_the_replaced_version(credentials: SoftwareCredentials) -> None:
    first_id = uuid.uuid4()
    first_uid = oid_from_uuid(first_id)
    replacement = Replacement(REPLACED_ENTRY, first_uid, set_id_for(first_id), version=1)
    pkg = package(credentials, [make_lot_document(replaces=replacement)])

    cda = cda_of(pkg, 0)
    assert validation_errors(cda, SchemaName.CDA) == []
    related = cda.find(f"{HL7}relatedDocument")
    assert related is not None and related.get("typeCode") == "RPLC"
    parent_id = related.find(f"{HL7}parentDocument/{HL7}id")
    assert parent_id is not None and parent_id.get("root") == first_uid
    assert cda.find(f"{HL7}setId").get("root") == set_id_for(first_id)
    assert cda.find(f"{HL7}versionNumber").get("value") == "2"
    # relatedDocument sits between documentationOf and componentOf (CDA R2 order).
    names = [etree.QName(c).localname for c in cda]
    assert names.index("documentationOf") < names.index("relatedDocument") < names.index(
        "componentOf")

    assert validation_errors(inline_xop(pkg.body, dict(pkg.parts)), SchemaName.XDS_B) == []
    rplc = [a for a in pkg.body.iter(f"{RIM}Association")
            if a.get("associationType") == ids.ASSOC_RPLC]
    assert [(a.get("sourceObject"), a.get("targetObject")) for a in rplc] == [
        ("Document01", REPLACED_ENTRY)]


def test_the_bridge_finds_again_the_set_id_of_what_it_minted() -> None:
    document_id = uuid.uuid4()
    assert derived_set_id(oid_from_uuid(document_id)) == set_id_for(document_id)
    assert derived_set_id("1.2.250.1.999.1.1.4242.1") is None
    assert derived_set_id("2.25.notanumber") is None


def test_a_first_version_has_no_related_document(credentials: SoftwareCredentials) -> None:
    pkg = package(credentials, [make_lot_document()])
    cda = cda_of(pkg, 0)
    assert cda.find(f"{HL7}relatedDocument") is None
    assert cda.find(f"{HL7}versionNumber").get("value") == "1"
    assert not [a for a in pkg.body.iter(f"{RIM}Association")
                if a.get("associationType") == ids.ASSOC_RPLC]
