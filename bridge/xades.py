"""The XAdES signature of a submission set (IHE DSG pattern, spec/dmp-protocol.md §4.3).

One `ds:Signature` document that envelops a Manifest: a reference to the submission set
(`urn:oid:<uniqueId>`) and one reference per document with the digest of its exact bytes, plus
XAdES 1.1.1 SignedProperties (signing time, signing certificate, implied policy).

Why not signxml here: signxml signs the data it is given (enveloped, enveloping or detached) and
emits XAdES 1.3.2 properties; the DMP pattern needs references to a Manifest object and to 1.1.1
SignedProperties inside the same Signature, with their `Type` attributes, which signxml cannot
produce. So this module assembles the XML and computes the digests (pure: hashlib and lxml's
c14n), and the caller's credentials sign the canonical SignedInfo — with a software key or a card,
the private key never reaches this module. The simulator verifies the result with signxml.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.1.1#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
MANIFEST_TYPE = "http://www.w3.org/2000/09/xmldsig#Manifest"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903/v1.1.1#SignedProperties"
PURPOSE_SOURCE = "1.2.840.10065.1.12.1.14"  # ASTM E1762 "Source"

SIGNATURE_ID = "IHESignature"
MANIFEST_ID = "IHEManifest"
SIGNED_PROPERTIES_ID = "S0-SignedProperties"


@dataclass(frozen=True)
class SigningCertificate:
    """What XAdES says about the signing certificate (the caller reads it from the cert)."""

    der: bytes
    issuer_name: str  # RFC 4514 string
    serial_number: int


def _ds(tag: str) -> str:
    return f"{{{DS}}}{tag}"


def _xades(tag: str) -> str:
    return f"{{{XADES}}}{tag}"


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _c14n(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, method="c14n", exclusive=False, with_comments=False))


def _reference(
    parent: etree._Element, uri: str, digest: str, ref_type: str | None, transform: bool
) -> etree._Element:
    ref = etree.SubElement(parent, _ds("Reference"), URI=uri)
    if ref_type:
        ref.set("Type", ref_type)
    if transform:
        transforms = etree.SubElement(ref, _ds("Transforms"))
        etree.SubElement(transforms, _ds("Transform"), Algorithm=C14N)
    etree.SubElement(ref, _ds("DigestMethod"), Algorithm=SHA256)
    etree.SubElement(ref, _ds("DigestValue")).text = digest
    return ref


@dataclass(frozen=True)
class UnsignedXades:
    """A complete signature document waiting for its SignatureValue."""

    root: etree._Element

    def signed_info_c14n(self) -> bytes:
        """The exact bytes the credentials must sign (RSA PKCS#1 v1.5 with SHA-256)."""
        signed_info = self.root.find(_ds("SignedInfo"))
        assert signed_info is not None  # built by build_unsigned_xades
        return _c14n(signed_info)

    def complete(self, signature_value: bytes) -> bytes:
        """The signature document's bytes, as they will be sent and hashed."""
        value = self.root.find(_ds("SignatureValue"))
        assert value is not None
        value.text = base64.b64encode(signature_value).decode("ascii")
        return bytes(etree.tostring(self.root, xml_declaration=True, encoding="UTF-8"))


def build_unsigned_xades(
    *,
    submission_unique_id: str,
    documents: Sequence[tuple[str, bytes]],
    certificate: SigningCertificate,
    signing_time: dt.datetime,
) -> UnsignedXades:
    """Assemble the signature of a submission set whose documents are (uniqueId, bytes)."""
    if signing_time.tzinfo is None:
        raise ValueError("signing_time must be timezone-aware")
    root = etree.Element(_ds("Signature"), nsmap={"ds": DS}, Id=SIGNATURE_ID)
    signed_info = etree.SubElement(root, _ds("SignedInfo"))
    etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=C14N)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=RSA_SHA256)
    etree.SubElement(root, _ds("SignatureValue"))
    key_info = etree.SubElement(root, _ds("KeyInfo"))
    x509_data = etree.SubElement(key_info, _ds("X509Data"))
    etree.SubElement(x509_data, _ds("X509Certificate")).text = base64.b64encode(
        certificate.der
    ).decode("ascii")

    manifest_object = etree.SubElement(root, _ds("Object"))
    manifest = etree.SubElement(manifest_object, _ds("Manifest"), Id=MANIFEST_ID)
    # What the DMP checks on the submission-set reference is not public; we put the digest of its
    # uniqueId text, so the value is meaningful and reproducible rather than a dummy.
    _reference(
        manifest,
        f"urn:oid:{submission_unique_id}",
        _b64_sha256(submission_unique_id.encode("ascii")),
        None,
        transform=False,
    )
    for unique_id, content in documents:
        _reference(manifest, f"urn:oid:{unique_id}", _b64_sha256(content), None, transform=False)

    qp_object = etree.SubElement(root, _ds("Object"))
    qualifying = etree.SubElement(
        qp_object, _xades("QualifyingProperties"), nsmap={"xades": XADES}, Target=f"#{SIGNATURE_ID}"
    )
    signed_props = etree.SubElement(qualifying, _xades("SignedProperties"), Id=SIGNED_PROPERTIES_ID)
    sig_props = etree.SubElement(signed_props, _xades("SignedSignatureProperties"))
    etree.SubElement(sig_props, _xades("SigningTime")).text = signing_time.astimezone(
        dt.UTC
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    cert = etree.SubElement(
        etree.SubElement(sig_props, _xades("SigningCertificate")), _xades("Cert")
    )
    cert_digest = etree.SubElement(cert, _xades("CertDigest"))
    # XAdES 1.1.1 puts CertDigest's children in its own namespace (1.3.2 moved them to ds:).
    etree.SubElement(cert_digest, _xades("DigestMethod"), Algorithm=SHA256)
    etree.SubElement(cert_digest, _xades("DigestValue")).text = _b64_sha256(certificate.der)
    issuer_serial = etree.SubElement(cert, _xades("IssuerSerial"))
    etree.SubElement(issuer_serial, _ds("X509IssuerName")).text = certificate.issuer_name
    etree.SubElement(issuer_serial, _ds("X509SerialNumber")).text = str(certificate.serial_number)
    policy = etree.SubElement(sig_props, _xades("SignaturePolicyIdentifier"))
    etree.SubElement(policy, _xades("SignaturePolicyImplied"))
    # The purpose of the signature ("Source", ASTM E1762) as XAdES says it. DRIMbox writes it as
    # bare text in a ds:SignatureProperty, which the XML-DSig schema forbids (element content
    # only); the signed CommitmentTypeIndication is the schema-valid IHE DSG form.
    data_props = etree.SubElement(signed_props, _xades("SignedDataObjectProperties"))
    commitment = etree.SubElement(data_props, _xades("CommitmentTypeIndication"))
    etree.SubElement(
        etree.SubElement(commitment, _xades("CommitmentTypeId")), _xades("Identifier")
    ).text = f"urn:oid:{PURPOSE_SOURCE}"
    etree.SubElement(commitment, _xades("AllSignedDataObjects"))

    # Digests last: the referenced elements are final now, and c14n of a subtree renders the
    # namespaces in scope exactly as a verifier will see them in the sent document.
    _reference(
        signed_info, f"#{MANIFEST_ID}", _b64_sha256(_c14n(manifest)), MANIFEST_TYPE, transform=True
    )
    _reference(
        signed_info,
        f"#{SIGNED_PROPERTIES_ID}",
        _b64_sha256(_c14n(signed_props)),
        SIGNED_PROPERTIES_TYPE,
        transform=True,
    )
    return UnsignedXades(root)
