"""The one hardened XML parser factory (DESIGN.md §6).

Every XML document that crosses a boundary (a CDA from a folder, a SOAP answer from the DMP, a
request reaching the simulator) is parsed here: no network, no DTD loading, no entity expansion,
no processing of huge trees unless the caller asks for it (a CDA carries a base64 PDF in one text
node), and a hard size limit checked before lxml sees a single byte.
"""

from __future__ import annotations

from lxml import etree

# 20 MiB covers a CDA wrapping the largest PDF the DMP accepts in practice; larger inputs are
# refused before parsing so a hostile file cannot exhaust memory.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class UnsafeXmlError(ValueError):
    """The bytes are not acceptable XML: too large, malformed, or using DTD/entities."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def make_parser(*, huge_text: bool = False) -> etree.XMLParser:
    """A parser that never touches the network nor expands entities."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=huge_text,
        remove_comments=False,
        remove_pis=False,
    )


def parse_xml(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, huge_text: bool = False
) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise UnsafeXmlError with the reason."""
    if len(data) > max_bytes:
        raise UnsafeXmlError(f"document too large: {len(data)} bytes > {max_bytes}")
    try:
        root = etree.fromstring(data, make_parser(huge_text=huge_text))
    except etree.XMLSyntaxError as exc:
        raise UnsafeXmlError(f"malformed XML: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.doctype:
        # A DOCTYPE is how entity bombs and external entities come in; nothing we accept has one.
        raise UnsafeXmlError("a DOCTYPE is not accepted")
    return root
