"""Shared pieces of the test-only request maker: namespaces, small XML helpers, WireSpec."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.1.1#"
HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XDSB = "urn:ihe:iti:xds-b:2007"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XOP = "http://www.w3.org/2004/08/xop/include"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"


def q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def new_oid() -> str:
    """A fresh uniqueId (2.25 + UUID as integer, the standard UUID-derived OID)."""
    return f"2.25.{uuid.uuid4().int}"


@dataclass(frozen=True)
class Replaced:
    """What a replacement needs to know of the replaced document."""

    entry_uuid: str
    unique_id: str
    set_id: str
    version: int


@dataclass
class WireSpec:
    """What to send; defaults make a valid submission. Tests change one field to break it."""

    to: str = "https://127.0.0.1/si-dmp-server/v2/services/repository"
    ins: str = "279035121518989"
    ins_oid: str = "1.2.250.1.213.1.4.10"
    doc_uid: str = field(default_factory=new_oid)
    set_uid: str = field(default_factory=new_oid)
    sig_uid: str = field(default_factory=new_oid)
    profession: str = "60"
    omit_wsa: frozenset[str] = frozenset()
    entry_patient_ins: str | None = None  # patientId on the document entry only
    hash_override: str | None = None  # hash slot of the document entry
    xades_digest_of: bytes | None = None  # sign a manifest digest of these bytes instead
    tamper_vihf: Callable[[etree._Element], None] | None = None  # after signing
    vihf_edit: Callable[[etree._Element], None] | None = None  # before signing
    no_vihf: bool = False
    tamper_request: Callable[[etree._Element], None] | None = None  # the ebRIM body
    cid_style: str = "uuid"  # "uuid" (uuid@host) or "numeric" (0.2)
    issue_instant: dt.datetime | None = None
    vihf_sha1: bool = False  # sign the VIHF with rsa-sha1 / sha1 (DRIMbox style)
    xades_sha1: bool = False  # XAdES with rsa-sha1 / sha1 digests (DRIMbox style)
    set_digest: bytes | None = None  # raw digest on the submission-set manifest reference
    cda_edit: Callable[[etree._Element], None] | None = None  # before hashing and signing
    set_id: str | None = None  # CDA setId (default: doc_uid + ".1")
    version: int = 1  # CDA versionNumber
    replaces: Replaced | None = None  # RPLC: the document this one replaces
    name_id: str = "899700366240"  # VIHF Subject/NameID
    auth_mode: str = "INDIRECTE"
    auth_mode_attribute: str = "Authentification_Mode"
    purpose: str = "normal"
    purpose_system_name: str = "mode acces VIHF 1.0"
    second_role: str = "SM26"  # for professions 10 and 21
    submission_time: str = "20240105091600"
    content_type_system: str = "1.2.250.1.71.4.2.4"
    status_on_signs: bool = False  # SubmissionSetStatus slot on the signs association
    bare_must_understand: bool = False  # mustUnderstand without the SOAP namespace


def _cx(ins: str, oid: str) -> str:
    return f"{ins}^^^&{oid}&ISO^NH"


def _sub(parent: etree._Element, ns: str, local: str, text: str | None = None,
         **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, q(ns, local), **attrs)
    if text is not None:
        el.text = text
    return el


