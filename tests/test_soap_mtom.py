"""SOAP 1.2 envelopes (WS-Addressing, WS-Security) and their MTOM/XOP packaging (spec §2.1–2.2)."""

from __future__ import annotations

import email.message
import email.parser
import email.policy

import pytest
from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from bridge.soap import (
    ACTION_ITI41,
    SOAP,
    WSA,
    WSSE,
    build_envelope,
    mtom,
    plain_soap,
    xop_href,
)
from bridge.xmlsafe import parse_xml

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
XDSB = "urn:ihe:iti:xds-b:2007"
TO = "https://127.0.0.1:8443/dmp/xds/repository"
MESSAGE_ID = "urn:uuid:6f1c0b7e-7f1a-4b7e-9f42-1d2b3c4d5e6f"
BOUNDARY = "MIMEBoundary_3b0c6a1e9d2f4e5a8b7c"
ROOT_ID = "root.message@dmp-bridge"
# Binary-looking parts: CR, LF, CRLF, NUL, high bytes, a line that starts with dashes.
CDA = b'<?xml version="1.0"?>\r\n<ClinicalDocument>\xc3\xa9t\xc3\xa9</ClinicalDocument>\n'
SIGNATURE = b"\x00\x01\r\r\n--not-the-boundary\n\xff\xfe trailing spaces   \r\n\r\n"
PARTS = [("doc-1@dmp-bridge", CDA), ("sig-1@dmp-bridge", SIGNATURE)]


def assertion() -> etree._Element:
    element = etree.Element(f"{{{SAML}}}Assertion", nsmap={"saml2": SAML}, ID="_a1",
                            Version="2.0", IssueInstant="2024-01-15T09:35:00Z")
    etree.SubElement(element, f"{{{SAML}}}Issuer").text = "C=FR, O=DEMO, CN=DEMO ORG SIGN"
    return element


def body() -> etree._Element:
    return etree.Element(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": XDSB})


def envelope(with_assertion: bool = True) -> etree._Element:
    return build_envelope(action=ACTION_ITI41, to=TO, message_id=MESSAGE_ID,
                          assertion=assertion() if with_assertion else None, body=body())


def header(env: etree._Element, ns: str, tag: str) -> etree._Element:
    found = env.find(f"{{{SOAP}}}Header/{{{ns}}}{tag}")
    assert found is not None, tag
    return found


def test_the_envelope_carries_message_id_to_and_action() -> None:
    env = envelope()
    assert header(env, WSA, "MessageID").text == MESSAGE_ID
    assert header(env, WSA, "To").text == TO
    assert header(env, WSA, "Action").text == ACTION_ITI41


def test_the_action_header_must_be_understood() -> None:
    assert header(envelope(), WSA, "Action").get(f"{{{SOAP}}}mustUnderstand") == "true"


def test_the_assertion_travels_in_a_must_understand_wsse_security_header() -> None:
    security = header(envelope(), WSSE, "Security")
    assert security.get(f"{{{SOAP}}}mustUnderstand") == "true"
    assert [child.tag for child in security] == [f"{{{SAML}}}Assertion"]
    assert security[0].get("ID") == "_a1"


def test_without_an_assertion_there_is_no_security_header() -> None:
    assert envelope(with_assertion=False).find(f".//{{{WSSE}}}Security") is None


def test_the_body_holds_the_request() -> None:
    soap_body = envelope().find(f"{{{SOAP}}}Body")
    assert soap_body is not None
    assert [child.tag for child in soap_body] == [f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest"]


def test_the_envelope_is_valid_soap_12() -> None:
    assert validation_errors(envelope(), SchemaName.SOAP12) == []


def test_a_plain_soap_message_announces_soap_12_with_its_action() -> None:
    request = plain_soap(envelope(), ACTION_ITI41)
    assert request.content_type == (
        f'application/soap+xml; charset=UTF-8; action="{ACTION_ITI41}"')
    assert parse_xml(request.body).tag == f"{{{SOAP}}}Envelope"


# ---------------------------------------------------------------- MTOM / XOP


def packaged() -> tuple[bytes, email.message.EmailMessage]:
    """The MTOM request, and the same bytes read back by Python's own MIME parser."""
    env = envelope()
    request = mtom(env, ACTION_ITI41, boundary=BOUNDARY, root_id=ROOT_ID, parts=PARTS)
    raw = b"Content-Type: " + request.content_type.encode("ascii") + b"\r\n\r\n" + request.body
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, email.message.EmailMessage)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8"), message


def payloads(message: email.message.EmailMessage) -> list[tuple[str | None, bytes]]:
    out = []
    for part in message.iter_parts():
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        out.append((part.get("Content-ID"), data))
    return out


def test_the_package_is_multipart_related_xop() -> None:
    _, message = packaged()
    assert message.get_content_type() == "multipart/related"
    assert message.get_param("type") == "application/xop+xml"
    assert message.get_param("start-info") == "application/soap+xml"
    assert message.get_param("action") == ACTION_ITI41
    assert message.get_boundary() == BOUNDARY
    assert not message.defects


def test_the_root_part_is_the_envelope_then_one_part_per_document_with_exact_bytes() -> None:
    soap_bytes, message = packaged()
    assert payloads(message) == [(f"<{ROOT_ID}>", soap_bytes),
                                 ("<doc-1@dmp-bridge>", CDA), ("<sig-1@dmp-bridge>", SIGNATURE)]


def test_the_start_parameter_names_the_root_part() -> None:
    _, message = packaged()
    first = next(message.iter_parts())
    assert message.get_param("start") == first.get("Content-ID") == f"<{ROOT_ID}>"


def test_the_root_part_is_soap_xop_and_document_parts_are_binary() -> None:
    _, message = packaged()
    root, *documents = message.iter_parts()
    assert root.get_content_type() == "application/xop+xml"
    assert root.get_param("type") == "application/soap+xml"
    assert root.get("Content-Transfer-Encoding") == "binary"
    for part in documents:
        assert part.get_content_type() == "application/octet-stream"
        assert part.get("Content-Transfer-Encoding") == "binary"


def test_a_boundary_found_inside_a_document_is_refused() -> None:
    clash = b"some bytes --" + BOUNDARY.encode("ascii") + b" more bytes"
    with pytest.raises(ValueError, match="boundary"):
        mtom(envelope(), ACTION_ITI41, boundary=BOUNDARY, root_id=ROOT_ID,
             parts=[("doc-1@dmp-bridge", clash)])


def test_a_boundary_found_inside_the_envelope_is_refused() -> None:
    env = envelope()
    header(env, WSA, "To").text = f"https://dmp/--{BOUNDARY}"
    with pytest.raises(ValueError, match="boundary"):
        mtom(env, ACTION_ITI41, boundary=BOUNDARY, root_id=ROOT_ID, parts=PARTS)


def test_xop_href_is_a_cid_url_with_percent_encoding() -> None:
    assert xop_href("doc-1@dmp-bridge") == "cid:doc-1@dmp-bridge"
    assert xop_href("doc 1/é@dmp_bridge.test") == "cid:doc%201%2F%C3%A9@dmp_bridge.test"
    assert xop_href("a%b<c>") == "cid:a%25b%3Cc%3E"
