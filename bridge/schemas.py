"""Compiled official XML schemas (XDS.b, ebRS 3.0, CDA R2 + ANS extensions, VIHF, XAdES, SOAP).

Why this module exists:

* **Offline.** The bridge runs in a medical practice, often behind a proxy or without Internet.
  Every schema is a byte-identical local copy under ``mappings/schemas/`` (see its
  ``PROVENANCE.md``). Several official files import by absolute ``http(s)://`` URL; a custom
  resolver maps exactly those URLs to the local copies (``data/SCHEMAS.md`` §3).
* **Hardened.** Schemas are parsed with ``no_network=True``, no DTD loading and only internal
  entities (signxml's xmldsig copy declares a few). Any URL not in the map is left to libxml2,
  which cannot fetch it because the network is off; libxml2 would then merely skip that import
  with a warning, so such a warning is turned into an error instead of a silently weaker schema.
* **Cheap.** Compiling the CDA schema costs ~0.1 s; each schema is compiled once, lazily, under a
  lock, and reused. Validation with one schema object is serialised by a per-schema lock because
  lxml keeps the last error log on the schema object.
"""

from __future__ import annotations

import functools
import threading
from enum import StrEnum
from pathlib import Path
from typing import Any

from lxml import etree

import mappings

SCHEMAS_DIR: Path = Path(mappings.__file__).resolve().parent / "schemas"


class SchemaName(StrEnum):
    """The schemas the bridge validates against; values are stable identifiers for logs."""

    XDS_B = "xds-b"
    """IHE ITI-41 body: ``xdsb:ProvideAndRegisterDocumentSetRequest`` (pulls rim/rs/lcm/query)."""
    EBRS_RS = "ebrs-rs"
    """``rs:RegistryResponse``."""
    EBRS_QUERY = "ebrs-query"
    """``query:AdhocQueryRequest`` / ``query:AdhocQueryResponse``."""
    EBRS_LCM = "ebrs-lcm"
    """``lcm:SubmitObjectsRequest`` and the other life-cycle requests."""
    CDA = "cda"
    """``hl7:ClinicalDocument`` (CDA R2 with the French extensions)."""
    VIHF = "vihf"
    """A whole ``wsse:Security`` header or a ``saml:Assertion`` whose attributes use ``hl7:CE``."""
    XADES111 = "xades111"
    """ETSI XAdES 1.1.1 (``http://uri.etsi.org/01903/v1.1.1#``) with XML-DSig."""
    SOAP12 = "soap12"
    """SOAP 1.2 ``soap:Envelope`` (header and body contents are lax)."""


_ENTRY_POINTS: dict[SchemaName, str] = {
    SchemaName.XDS_B: "ebrs30/IHE/XDS.b_DocumentRepository.xsd",
    SchemaName.EBRS_RS: "ebrs30/ebRS/rs.xsd",
    SchemaName.EBRS_QUERY: "ebrs30/ebRS/query.xsd",
    SchemaName.EBRS_LCM: "ebrs30/ebRS/lcm.xsd",
    SchemaName.CDA: "cda/CDA_extended.xsd",
    SchemaName.XADES111: "saml-dsig/xades111/XAdESv111.xsd",
    SchemaName.SOAP12: "saml-dsig/wss4j/soap-1.2.xsd",
}

# Absolute schemaLocation URLs found in the official files → local copy (SCHEMAS.md §3).
URL_MAP: dict[str, str] = {
    "http://www.w3.org/2001/xml.xsd": "saml-dsig/wss4j/xml.xsd",
    "http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd": (
        "saml-dsig/wss4j/xmldsig-core-schema.xsd"
    ),
    "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd": (
        "saml-dsig/signxml/schemas/xmldsig-core-schema.xsd"
    ),
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd": (
        "saml-dsig/wss4j/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    ),
    "https://www.w3.org/2004/08/xop/include": "saml-dsig/wss4j/xop-include.xsd",
}

# An xs:schema with no target namespace that only gathers the namespaces a VIHF uses: SAML
# assertion, HL7 v3 (the attribute values carry xsi:type="hl7:CE") and WS-Security secext.
_VIHF_WRAPPER = """\
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:import namespace="urn:oasis:names:tc:SAML:2.0:assertion"
             schemaLocation="saml-dsig/saml/saml-schema-assertion-2.0.xsd"/>
  <xs:import namespace="urn:hl7-org:v3" schemaLocation="cda/CDA_extended.xsd"/>
  <xs:import
      namespace="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
      schemaLocation="saml-dsig/wss4j/oasis-200401-wss-wssecurity-secext-1.0.xsd"/>
</xs:schema>
"""


class _LocalUrlResolver(etree.Resolver):  # type: ignore[misc]
    """Serve the mapped absolute URLs from local files; leave everything else to libxml2.

    Returning None for an unmapped URL is safe: the parser has ``no_network=True``, so an
    ``http(s)://`` location fails instead of being fetched; relative locations are local files.
    """

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        local = URL_MAP.get(system_url)
        if local is None:
            return None
        return self.resolve_filename(str(SCHEMAS_DIR / local), context)


def _make_parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        resolve_entities="internal",
        huge_tree=False,
    )
    parser.resolvers.add(_LocalUrlResolver())
    return parser


# libxml2 only warns, and skips the import, when a schemaLocation cannot be loaded.
_UNLOCATED_IMPORT = frozenset({"SCHEMAP_WARN_UNLOCATED_SCHEMA", "SCHEMAP_FAILED_LOAD"})


def _compile(name: SchemaName) -> etree.XMLSchema:
    parser = _make_parser()
    if name is SchemaName.VIHF:
        # The base URL names a (non-existent) file in the schemas folder so that the relative
        # schemaLocations above resolve against that folder.
        doc = etree.fromstring(
            _VIHF_WRAPPER.encode(), parser, base_url=str(SCHEMAS_DIR / "vihf-wrapper.xsd")
        )
    else:
        doc = etree.parse(str(SCHEMAS_DIR / _ENTRY_POINTS[name]), parser)
    compiled = etree.XMLSchema(doc)
    unlocated = [str(entry) for entry in compiled.error_log if entry.type_name in _UNLOCATED_IMPORT]
    if unlocated:
        raise etree.XMLSchemaParseError(f"schema {name}: import not available offline: {unlocated}")
    return compiled


_compile_lock = threading.Lock()
_compiled: dict[SchemaName, etree.XMLSchema] = {}
_validate_locks: dict[SchemaName, threading.Lock] = {name: threading.Lock() for name in SchemaName}


@functools.cache
def schema(name: SchemaName) -> etree.XMLSchema:
    """The compiled schema ``name``, compiled on first use and shared afterwards.

    Raises ``lxml.etree.XMLSchemaParseError`` if the local schema files are missing or broken.
    """
    with _compile_lock:
        compiled = _compiled.get(name)
        if compiled is None:
            compiled = _compiled[name] = _compile(name)
        return compiled


def validation_errors(root: etree._Element, name: SchemaName, *, limit: int = 20) -> list[str]:
    """Validate ``root`` (a document root or any element, e.g. a SOAP Body child) against ``name``.

    Returns an empty list when valid, else at most ``limit`` messages ``"line N: message"``.
    """
    compiled = schema(name)
    with _validate_locks[name]:
        if compiled.validate(root):
            return []
        entries = list(compiled.error_log)
    messages = [f"line {entry.line}: {entry.message}" for entry in entries[: max(limit, 0)]]
    if not messages and limit > 0:
        # libxml2 said invalid without an error entry; never report "valid" by accident.
        messages = ["line 0: document is not valid"]
    return messages
