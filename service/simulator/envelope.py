"""Reading a SOAP 1.2 request (plain or MTOM) into its envelope, headers, body and parts."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import UnsafeXmlError, parse_xml
from service.simulator.invented_codes import InventedCode
from service.simulator.mtom import MtomError, media_type, parse_mtom
from service.simulator.namespaces import SOAP, WSA, q
from service.simulator.problems import Problem


class SoapError(ValueError):
    """The request is not a readable SOAP 1.2 message; answered with a Sender Fault."""

    def __init__(self, message_fr: str) -> None:
        super().__init__(message_fr)
        self.message_fr = message_fr


@dataclass(frozen=True)
class SoapRequest:
    """A parsed request: envelope, header (may be absent), first body child, MTOM parts."""

    envelope: etree._Element
    header: etree._Element | None
    body_child: etree._Element | None
    parts: dict[str, bytes]
    variants: tuple[Problem, ...] = ()  # known client variants (spec §7), all lenient

    def wsa(self, name: str) -> str | None:
        """Text of the WS-Addressing header `name` (MessageID, To, Action), or None."""
        if self.header is None:
            return None
        found = self.header.find(q(WSA, name))
        if found is None:
            return None
        return (found.text or "").strip() or None


def _skeleton(envelope: etree._Element) -> etree._Element:
    """The envelope with empty Header and Body, for the SOAP 1.2 schema.

    The schema's lax wildcards still try to resolve `xsi:type` in header blocks, and the VIHF's
    `hl7:CE` is unknown to it; the blocks themselves are validated by their own schemas.
    """
    skeleton = etree.Element(envelope.tag, attrib=dict(envelope.attrib), nsmap=envelope.nsmap)
    for child in envelope:
        if isinstance(child.tag, str):
            etree.SubElement(skeleton, child.tag, attrib=dict(child.attrib))
    return skeleton


def read_soap(content_type: str, body: bytes, *, max_bytes: int) -> SoapRequest:
    """Parse the HTTP body; raise SoapError with a French reason when it cannot be read."""
    kind = media_type(content_type or "text/plain")
    parts: dict[str, bytes] = {}
    variants: list[Problem] = []
    if kind == "multipart/related":
        try:
            message = parse_mtom(content_type, body, max_bytes=max_bytes)
        except MtomError as exc:
            raise SoapError(exc.message_fr) from exc
        root_kind = media_type(message.root_content_type or "text/plain")
        if root_kind not in ("application/xop+xml", "application/soap+xml"):
            raise SoapError("La partie racine MTOM doit être de type application/xop+xml.")
        xml, parts = message.root, message.parts
    elif kind == "application/soap+xml":
        xml = body
    elif kind == "application/octet-stream":  # DRIMbox's ITI-57 (spec §4.5, §7)
        xml = body
        variants.append(Problem(InventedCode.SOAP_INVALIDE, "HTTP/Content-Type",
                                "Content-Type application/octet-stream : application/soap+xml "
                                "est attendu.", lenient=True))
    else:
        raise SoapError(
            "Type de contenu non accepté : application/soap+xml ou multipart/related attendu."
        )
    try:
        envelope = parse_xml(xml, max_bytes=max_bytes, huge_text=True)
    except UnsafeXmlError as exc:
        raise SoapError("Le message SOAP n'est pas un XML acceptable.") from exc
    if envelope.tag != q(SOAP, "Envelope"):
        raise SoapError("L'élément racine doit être soap:Envelope (SOAP 1.2).")
    if validation_errors(_skeleton(envelope), SchemaName.SOAP12, limit=1):
        raise SoapError("L'enveloppe SOAP 1.2 n'est pas conforme au schéma.")
    header = envelope.find(q(SOAP, "Header"))
    if header is not None and any(isinstance(h.tag, str) and h.get("mustUnderstand") is not None
                                  for h in header):
        variants.append(Problem(InventedCode.SOAP_INVALIDE, "soap:Header/@mustUnderstand",
                                "Attribut mustUnderstand sans l'espace de noms SOAP 1.2.",
                                lenient=True))
    body_el = envelope.find(q(SOAP, "Body"))
    children = [] if body_el is None else [c for c in body_el if isinstance(c.tag, str)]
    return SoapRequest(
        envelope=envelope,
        header=header,
        body_child=children[0] if children else None,
        parts=parts,
        variants=tuple(variants),
    )
