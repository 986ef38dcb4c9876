"""The XAdES signature of the submission set (spec §4.3, IHE DSG): shape, cryptographic
validity with a certificate from the CA, and the Manifest digests of every document.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import UnsafeXmlError, parse_xml
from service.simulator.checks.algorithms import sha1_problems
from service.simulator.invented_codes import InventedCode
from service.simulator.namespaces import DS, XADES111, XADES132, q
from service.simulator.problems import Problem
from service.simulator.trust import SignatureRefused, Trust, verify_signature

MANIFEST_TYPE = "http://www.w3.org/2000/09/xmldsig#Manifest"
SIGNED_PROPERTIES_TYPES = frozenset(
    {"http://uri.etsi.org/01903/v1.1.1#SignedProperties", "http://uri.etsi.org/01903#SignedProperties"}
)
DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}
C14N = {
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": (False, False),
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments": (False, True),
    "http://www.w3.org/2001/10/xml-exc-c14n#": (True, False),
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments": (True, True),
}
INVALID = InventedCode.XADES_INVALIDE
LOC = "Signature XAdES"


def _by_id(root: etree._Element, ident: str) -> etree._Element | None:
    for element in root.iter():
        if isinstance(element.tag, str) and ident in (element.get("Id"), element.get("ID")):
            return element
    return None


def _check_signed_info(root: etree._Element, signature: etree._Element) -> list[Problem]:
    refs = signature.findall(f"{q(DS, 'SignedInfo')}/{q(DS, 'Reference')}")
    manifest = [
        r for r in refs if r.get("URI") == "#IHEManifest" and r.get("Type") == MANIFEST_TYPE
    ]
    props = [r for r in refs if r.get("Type") in SIGNED_PROPERTIES_TYPES]
    problems: list[Problem] = []
    if len(refs) != 2 or len(manifest) != 1 or len(props) != 1:
        problems.append(Problem(INVALID, f"{LOC}/SignedInfo", "SignedInfo doit référencer "
                                "#IHEManifest (Manifest) et les SignedProperties XAdES."))
        return problems
    target = _by_id(root, (props[0].get("URI") or "").removeprefix("#"))
    if target is None or target.tag not in (q(XADES111, "SignedProperties"),
                                            q(XADES132, "SignedProperties")):
        problems.append(Problem(INVALID, f"{LOC}/SignedProperties",
                                "Les SignedProperties XAdES (v1.1.1 ou v1.3.2) sont introuvables."))
    return problems


def _document_digest(reference: etree._Element, data: bytes) -> bytes | None:
    method = reference.find(q(DS, "DigestMethod"))
    algorithm = DIGESTS.get("" if method is None else method.get("Algorithm") or "")
    if algorithm is None:
        return None
    payload = data
    for transform in reference.iterfind(f"{q(DS, 'Transforms')}/{q(DS, 'Transform')}"):
        mode = C14N.get(transform.get("Algorithm") or "")
        if mode is None:
            return None
        try:
            doc = parse_xml(data, max_bytes=len(data) + 1, huge_text=True)
        except UnsafeXmlError:
            return None
        payload = etree.tostring(doc, method="c14n", exclusive=mode[0], with_comments=mode[1])
    return hashlib.new(algorithm, payload).digest()


def _set_reference_problems(reference: etree._Element) -> list[Problem]:
    """What the DMP checks on the submission-set reference is unknown (spec §4.3, §9): the
    simulator only asks for a digest of the right length, which DRIMbox's dummy "AA==" is not.
    """
    method = reference.find(q(DS, "DigestMethod"))
    algorithm = DIGESTS.get("" if method is None else method.get("Algorithm") or "")
    value = "".join((reference.findtext(q(DS, "DigestValue")) or "").split())
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    if algorithm is None or len(raw) != hashlib.new(algorithm).digest_size:
        return [Problem(INVALID, f"{LOC}/Manifest/Reference", "Empreinte factice ou mal formée "
                        "sur la référence du lot de soumission.", lenient=True)]
    return []


def _check_manifest(
    root: etree._Element, set_unique_id: str | None, documents: dict[str, bytes]
) -> list[Problem]:
    manifest = _by_id(root, "IHEManifest")
    if manifest is None or manifest.tag != q(DS, "Manifest"):
        return [Problem(INVALID, f"{LOC}/Manifest", "ds:Manifest Id=IHEManifest introuvable.")]
    refs = manifest.findall(q(DS, "Reference"))
    uris = [(r.get("URI") or "").removeprefix("urn:oid:") for r in refs]
    expected = [set_unique_id or "", *documents]
    problems: list[Problem] = []
    if sorted(uris) != sorted(expected):
        problems.append(Problem(INVALID, f"{LOC}/Manifest", "Le Manifest doit référencer le lot "
                                "et chaque document par urn:oid:<uniqueId>, une fois chacun."))
    for ref, uid in zip(refs, uris, strict=True):
        data = documents.get(uid)
        if data is None:
            problems.extend(_set_reference_problems(ref))
            continue
        digest = _document_digest(ref, data)
        value = "".join((ref.findtext(q(DS, "DigestValue")) or "").split())
        if digest is None:
            problems.append(Problem(INVALID, f"{LOC}/Manifest/Reference",
                                    "Algorithme d'empreinte ou transformation non accepté."))
        elif base64.b64encode(digest).decode("ascii") != value:
            problems.append(Problem(InventedCode.XADES_DIGEST, f"{LOC}/Manifest/Reference",
                                    "L'empreinte d'un document dans le Manifest XAdES ne "
                                    "correspond pas au document transmis."))
    return problems


def check_xades(
    data: bytes,
    *,
    set_unique_id: str | None,
    documents: dict[str, bytes],
    trust: Trust,
    now: dt.datetime,
) -> list[Problem]:
    """`documents` maps each document uniqueId to its bytes (signature entry excluded)."""
    try:
        root = parse_xml(data)
    except UnsafeXmlError:
        return [Problem(INVALID, LOC, "La signature du lot n'est pas un XML acceptable.")]
    is_signature = root.tag == q(DS, "Signature")
    signatures = [root] if is_signature else root.findall(f".//{q(DS, 'Signature')}")
    if len(signatures) != 1:
        return [Problem(INVALID, LOC, "Le document de signature doit contenir une ds:Signature.")]
    signature = signatures[0]
    problems = _check_signed_info(root, signature)
    # Only the XAdES properties are schema-checked: IHE DSG's own example puts bare text in
    # ds:SignatureProperty (purposeOfSignature), which the xmldsig schema does not allow.
    qualifying = signature.find(f".//{q(XADES111, 'QualifyingProperties')}")
    if qualifying is not None:
        problems.extend(Problem(INVALID, LOC, f"Propriétés XAdES 1.1.1 non conformes : {e}")
                        for e in validation_errors(qualifying, SchemaName.XADES111, limit=3))
    if problems:
        return problems
    try:
        verify_signature(root, trust=trust, now=now, expect_references=2, validate_schema=False)
    except SignatureRefused as exc:
        return [Problem(InventedCode.XADES_SIGNATURE, LOC,
                        f"Signature XAdES refusée : {exc.message_fr}")]
    return (sha1_problems(root, InventedCode.XADES_SIGNATURE, LOC)
            + _check_manifest(root, set_unique_id, documents))
