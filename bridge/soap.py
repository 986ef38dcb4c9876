"""SOAP 1.2 envelopes with WS-Addressing and WS-Security, and their MTOM/XOP packaging
(spec/dmp-protocol.md §2.1–2.2). Pure: ids and bodies come in, bytes and headers go out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from lxml import etree

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XOP = "http://www.w3.org/2004/08/xop/include"

ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"


def build_envelope(
    *, action: str, to: str, message_id: str, assertion: etree._Element | None, body: etree._Element
) -> etree._Element:
    """`soap:Envelope` with wsa:MessageID/To/Action and the signed VIHF in wsse:Security."""
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP, "wsa": WSA})
    header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = message_id
    etree.SubElement(header, f"{{{WSA}}}To").text = to
    action_el = etree.SubElement(header, f"{{{WSA}}}Action")
    action_el.set(f"{{{SOAP}}}mustUnderstand", "true")
    action_el.text = action
    if assertion is not None:
        security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE})
        security.set(f"{{{SOAP}}}mustUnderstand", "true")
        security.append(assertion)
    etree.SubElement(envelope, f"{{{SOAP}}}Body").append(body)
    return envelope


@dataclass(frozen=True)
class HttpRequestBody:
    """What goes on the wire: the Content-Type header and the body bytes."""

    content_type: str
    body: bytes


def plain_soap(envelope: etree._Element, action: str) -> HttpRequestBody:
    """A SOAP 1.2 message without attachments (ITI-18, ITI-57)."""
    return HttpRequestBody(
        content_type=f'application/soap+xml; charset=UTF-8; action="{action}"',
        body=etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"),
    )


def xop_href(content_id: str) -> str:
    """The `xop:Include/@href` that points at a MIME part (RFC 2392: cid URLs are %-encoded)."""
    return "cid:" + quote(content_id, safe="@.-_")


def mtom(
    envelope: etree._Element,
    action: str,
    *,
    boundary: str,
    root_id: str,
    parts: Sequence[tuple[str, bytes]],
) -> HttpRequestBody:
    """A multipart/related XOP package: the envelope first, then one binary part per document.

    `boundary` must not occur in any part; the caller derives it from a fresh uuid, which makes a
    collision with document bytes vanishingly unlikely, and we still check.
    """
    soap_bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    marker = f"--{boundary}".encode("ascii")
    chunks: list[bytes] = []
    root_headers = (
        f'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"; '
        f'action="{action}"\r\n'
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{root_id}>\r\n\r\n"
    )
    for headers, data in [(root_headers, soap_bytes)] + [
        (
            "Content-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{cid}>\r\n\r\n",
            data,
        )
        for cid, data in parts
    ]:
        if marker in data:
            raise ValueError("MIME boundary found inside a part; choose another boundary")
        chunks.append(marker + b"\r\n" + headers.encode("ascii") + data + b"\r\n")
    chunks.append(marker + b"--\r\n")
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"; action="{action}"'
    )
    return HttpRequestBody(content_type=content_type, body=b"".join(chunks))
