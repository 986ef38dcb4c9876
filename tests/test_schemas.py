"""Specification of bridge.schemas: the official schemas compile offline and judge real samples."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from bridge.schemas import SCHEMAS_DIR, URL_MAP, SchemaName, schema, validation_errors
from bridge.xmlsafe import parse_xml

ANS = Path(__file__).parent / "fixtures" / "ans"

RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def _load(name: str) -> etree._Element:
    return parse_xml((ANS / name).read_bytes(), huge_text=True)


def _xml(text: str) -> etree._Element:
    return parse_xml(text.encode(), huge_text=True)


@pytest.mark.parametrize("name", list(SchemaName))
def test_every_schema_compiles_from_the_local_copies(name: SchemaName) -> None:
    assert isinstance(schema(name), etree.XMLSchema)


def test_a_schema_is_compiled_once_and_shared() -> None:
    assert schema(SchemaName.CDA) is schema(SchemaName.CDA)


def test_every_mapped_url_points_to_a_local_file() -> None:
    for url, local in URL_MAP.items():
        assert url.startswith(("http://", "https://"))
        assert (SCHEMAS_DIR / local).is_file(), url


def test_the_schemas_ship_with_their_provenance() -> None:
    provenance = (SCHEMAS_DIR / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "byte-identical" in provenance
    for folder in (
        "ebrs30/ebRS/",
        "ebrs30/IHE/",
        "cda/",
        "saml-dsig/wss4j/",
        "saml-dsig/xades111/",
    ):
        assert f"`{folder}`" in provenance


def test_the_ans_reference_cda_n1_is_valid() -> None:
    assert validation_errors(_load("DOC_NON_STRUCTURE_CDA-R2-N1.xml"), SchemaName.CDA) == []


def test_the_ans_vihf_example_only_fails_on_its_anonymised_signature_value() -> None:
    errors = validation_errors(_load("vihf-automate-example.xml"), SchemaName.VIHF)

    assert len(errors) == 1
    assert "SignatureValue" in errors[0]
    assert "'XXXXXXX' is not a valid value of the atomic type 'xs:base64Binary'" in errors[0]
    assert errors[0].startswith("line 19: ")


def test_a_saml_assertion_alone_validates_against_the_vihf_schema() -> None:
    assertion = _load("vihf-automate-example.xml")[0]
    errors = validation_errors(assertion, SchemaName.VIHF)
    assert len(errors) == 1
    assert "SignatureValue" in errors[0]


def test_a_minimal_registry_response_is_valid() -> None:
    response = _xml(f'<rs:RegistryResponse xmlns:rs="{RS}" status="{SUCCESS}"/>')
    assert validation_errors(response, SchemaName.EBRS_RS) == []


def test_a_registry_response_with_an_unknown_element_is_invalid() -> None:
    response = _xml(
        f'<rs:RegistryResponse xmlns:rs="{RS}" status="{SUCCESS}"><rs:Bogus/></rs:RegistryResponse>'
    )
    errors = validation_errors(response, SchemaName.EBRS_RS)
    assert len(errors) == 1
    assert errors[0].startswith("line 1: ")
    assert "Bogus" in errors[0]


def test_a_provide_and_register_request_needs_a_submit_objects_request() -> None:
    request = _xml(
        '<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb="urn:ihe:iti:xds-b:2007"/>'
    )
    errors = validation_errors(request, SchemaName.XDS_B)
    assert errors
    assert "SubmitObjectsRequest" in errors[0]


def test_an_element_inside_a_larger_document_is_validated_on_its_own() -> None:
    envelope = _xml(
        '<Body xmlns="urn:example:wrapper">'
        f'<rs:RegistryResponse xmlns:rs="{RS}" status="{SUCCESS}"/></Body>'
    )
    assert validation_errors(envelope[0], SchemaName.EBRS_RS) == []
    assert validation_errors(envelope, SchemaName.EBRS_RS) != []


def test_the_number_of_messages_is_limited() -> None:
    bogus = "".join(f"<rs:Bogus{i}/>" for i in range(5))
    response = _xml(
        f'<rs:RegistryResponse xmlns:rs="{RS}" status="{SUCCESS}">{bogus}</rs:RegistryResponse>'
    )
    assert len(validation_errors(response, SchemaName.EBRS_RS, limit=1)) == 1


def test_validation_is_safe_from_several_threads() -> None:
    valid = _load("DOC_NON_STRUCTURE_CDA-R2-N1.xml")
    invalid = _xml('<ClinicalDocument xmlns="urn:hl7-org:v3"/>')

    def check(i: int) -> bool:
        doc = valid if i % 2 == 0 else invalid
        return validation_errors(doc, SchemaName.CDA) == []

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(check, range(40)))

    assert results == [i % 2 == 0 for i in range(40)]
