"""Test-only signatures: the VIHF (signxml enveloped) and the XAdES manifest signature."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml import XMLSigner, methods  # type: ignore[attr-defined]

from service.test_pki import TestPki
from tests.simulator.wire_base import (
    C14N_10,
    DS,
    HL7,
    RSA_SHA1,
    RSA_SHA256,
    SAML,
    SHA1,
    SHA256,
    XADES,
    XSI,
    WireSpec,
    _cx,
    _sub,
    q,
)


class _LegacySigner(XMLSigner):
    """signxml refuses SHA-1 by default; DRIMbox (accepted by the DMP) signs with rsa-sha1."""

    def check_deprecated_methods(self) -> None:
        return None


def _pem(data: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(data)


# ---------------------------------------------------------------- VIHF (SAML 2.0, enveloped)

def _attribute(statement: etree._Element, name: str, value: str | etree._Element) -> None:
    attr = _sub(statement, SAML, "Attribute", Name=name)
    av = _sub(attr, SAML, "AttributeValue")
    if isinstance(value, str):
        av.text = value
    else:
        av.append(value)


def _ce(tag: str, code: str, system: str, display: str) -> etree._Element:
    el = etree.Element(q(HL7, tag), nsmap={None: HL7, "xsi": XSI}, code=code, codeSystem=system,
                       displayName=display)
    el.set(q(XSI, "type"), "CE")
    return el


def build_vihf(pki: TestPki, spec: WireSpec) -> etree._Element:
    """A signed VIHF 3.0 in INDIRECTE mode (ORG SIGN certificate)."""
    cert = _pem(pki.org_sign.cert.read_bytes())
    now = spec.issue_instant or dt.datetime.now(dt.UTC)
    instant = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assertion_id = f"_{uuid.uuid4()}"
    assertion = etree.Element(q(SAML, "Assertion"), nsmap={"saml2": SAML, "xsi": XSI, "ds": DS},
                              ID=assertion_id, IssueInstant=instant, Version="2.0")
    _sub(assertion, SAML, "Issuer", cert.subject.rfc4514_string(),
         Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
    _sub(assertion, DS, "Signature", Id="placeholder")
    subject = _sub(assertion, SAML, "Subject")
    _sub(subject, SAML, "NameID", spec.name_id)
    authn = _sub(assertion, SAML, "AuthnStatement", AuthnInstant=instant)
    context = _sub(authn, SAML, "AuthnContext")
    _sub(context, SAML, "AuthnContextClassRef",
         "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient")
    st = _sub(assertion, SAML, "AttributeStatement")
    _attribute(st, "VIHF_Version", "3.0")
    _attribute(st, spec.auth_mode_attribute, spec.auth_mode)
    _attribute(st, "Identifiant_Structure", "499700366240007")
    _attribute(st, "Secteur_Activite", "SA07^1.2.250.1.71.4.2.4")
    _attribute(st, "urn:oasis:names:tc:xspa:1.0:subject:subject-id", "dmp-bridge, tests")
    _attribute(st, "urn:oasis:names:tc:xacml:2.0:subject:role",
               _ce("Role", spec.profession, "1.2.250.1.71.1.2.7", "Infirmier"))
    if spec.profession in ("10", "21"):
        _attribute(st, "urn:oasis:names:tc:xacml:2.0:subject:role",
                   _ce("Role", spec.second_role, "1.2.250.1.71.4.2.5", "Savoir-faire"))
    purpose = _ce("PurposeOfUse", spec.purpose, "1.2.250.1.213.1.1.4.248", "Accès")
    purpose.set("codeSystemName", spec.purpose_system_name)
    _attribute(st, "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse", purpose)
    _attribute(st, "urn:oasis:names:tc:xacml:2.0:resource:resource-id", _cx(spec.ins, spec.ins_oid))
    _attribute(st, "Ressource_URN", "urn:dmp")
    _attribute(st, "LPS_Nom", "DMP-BRIDGE")
    _attribute(st, "LPS_Version", "0.1.0")
    _attribute(st, "LPS_ID_HOMOLOGATION_DMP", "TEST-000000-tmp1")
    if spec.vihf_edit is not None:
        spec.vihf_edit(assertion)
    algorithm = "sha1" if spec.vihf_sha1 else "sha256"
    signer = _LegacySigner(method=methods.enveloped, signature_algorithm=f"rsa-{algorithm}",
                           digest_algorithm=algorithm,
                           c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
    signed: etree._Element = signer.sign(
        assertion, key=pki.org_sign.key.read_bytes(), cert=pki.org_sign.cert.read_text(),
        reference_uri=f"#{assertion_id}", id_attribute="ID",
    )
    if spec.tamper_vihf is not None:
        spec.tamper_vihf(signed)
    return signed


# ---------------------------------------------------------------- XAdES (IHE DSG manifest)

def _c14n(el: etree._Element) -> bytes:
    return bytes(etree.tostring(el, method="c14n", exclusive=False, with_comments=False))


def _reference(parent: etree._Element, uri: str, digest: bytes, *, type_: str | None = None,
               c14n: bool = False, algorithm: str = SHA256) -> etree._Element:
    ref = _sub(parent, DS, "Reference", URI=uri)
    if type_:
        ref.set("Type", type_)
    if c14n:
        _sub(_sub(ref, DS, "Transforms"), DS, "Transform", Algorithm=C14N_10)
    _sub(ref, DS, "DigestMethod", Algorithm=algorithm)
    _sub(ref, DS, "DigestValue", base64.b64encode(digest).decode("ascii"))
    return ref


def build_xades(pki: TestPki, spec: WireSpec, document: bytes) -> bytes:
    """The signature document: ds:Signature enveloping the Manifest and XAdES 1.1.1 properties."""
    cert = _pem(pki.org_sign.cert.read_bytes())
    key = serialization.load_pem_private_key(pki.org_sign.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    sig_id = f"sig-{uuid.uuid4()}"
    signature = etree.Element(q(DS, "Signature"), nsmap={"ds": DS}, Id=sig_id)
    signed_info = _sub(signature, DS, "SignedInfo")
    _sub(signed_info, DS, "CanonicalizationMethod", Algorithm=C14N_10)
    _sub(signed_info, DS, "SignatureMethod", Algorithm=RSA_SHA1 if spec.xades_sha1 else RSA_SHA256)
    value = _sub(signature, DS, "SignatureValue")
    der = cert.public_bytes(serialization.Encoding.DER)
    key_info = _sub(signature, DS, "KeyInfo")
    _sub(_sub(key_info, DS, "X509Data"), DS, "X509Certificate", base64.b64encode(der).decode())
    props = _sub(_sub(signature, DS, "Object"), DS, "SignatureProperties")
    _sub(props, DS, "SignatureProperty", "1.2.840.10065.1.12.1.14", Id="purposeOfSignature",
         Target=f"#{sig_id}")
    manifest = _sub(_sub(signature, DS, "Object"), DS, "Manifest", Id="IHEManifest")
    set_digest = spec.set_digest
    if set_digest is None:
        set_digest = hashlib.sha256(spec.set_uid.encode("ascii")).digest()
    _reference(manifest, f"urn:oid:{spec.set_uid}", set_digest)
    signed_bytes = document if spec.xades_digest_of is None else spec.xades_digest_of
    if spec.xades_sha1:
        _reference(manifest, f"urn:oid:{spec.doc_uid}", hashlib.sha1(signed_bytes).digest(),
                   algorithm=SHA1)
    else:
        _reference(manifest, f"urn:oid:{spec.doc_uid}", hashlib.sha256(signed_bytes).digest())
    qp = etree.SubElement(_sub(signature, DS, "Object"), q(XADES, "QualifyingProperties"),
                          nsmap={"xades": XADES}, Target=f"#{sig_id}")
    sp = _sub(qp, XADES, "SignedProperties", Id="S0-SignedProperties")
    ssp = _sub(sp, XADES, "SignedSignatureProperties")
    _sub(ssp, XADES, "SigningTime", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    cert_el = _sub(_sub(ssp, XADES, "SigningCertificate"), XADES, "Cert")
    digest = _sub(cert_el, XADES, "CertDigest")
    _sub(digest, XADES, "DigestMethod", Algorithm=SHA256)
    _sub(digest, XADES, "DigestValue", base64.b64encode(hashlib.sha256(der).digest()).decode())
    serial = _sub(cert_el, XADES, "IssuerSerial")
    _sub(serial, DS, "X509IssuerName", cert.issuer.rfc4514_string())
    _sub(serial, DS, "X509SerialNumber", str(cert.serial_number))
    policy = _sub(ssp, XADES, "SignaturePolicyIdentifier")
    _sub(policy, XADES, "SignaturePolicyImplied")
    _sub(sp, XADES, "SignedDataObjectProperties")
    # Digests are computed with every node in its final place (inclusive c14n sees ancestors).
    _reference(signed_info, "#IHEManifest", hashlib.sha256(_c14n(manifest)).digest(),
               type_="http://www.w3.org/2000/09/xmldsig#Manifest")
    _reference(signed_info, "#S0-SignedProperties", hashlib.sha256(_c14n(sp)).digest(),
               type_="http://uri.etsi.org/01903/v1.1.1#SignedProperties")
    chosen = hashes.SHA1() if spec.xades_sha1 else hashes.SHA256()
    raw = key.sign(_c14n(signed_info), padding.PKCS1v15(), chosen)
    value.text = base64.b64encode(raw).decode("ascii")
    return bytes(etree.tostring(signature, xml_declaration=True, encoding="UTF-8"))
