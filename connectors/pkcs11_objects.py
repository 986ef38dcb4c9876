"""What a CPS card shows through PKCS#11, decoded: which certificate is which, and who holds
the card (spec/card-auth.md A3–A4). Pure functions over the objects' attribute values; the
session that reads them is `connectors.pkcs11_session`.

Certificates are found by their Cryptolib labels, or by key usage when the labels differ
(nonRepudiation = signature key); the holder comes from the signature certificate's subject
(CN = PS_IdNat, SN, GN) and the public data object `CPS_INFO_PS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from bridge.card_identity import CardDataInvalid, CardHolder, parse_info_ps
from bridge.card_port import KeyRole

CERTIFICATE_LABELS = {
    KeyRole.AUTHENTICATION: "Certificat d'Authentification CPS",
    KeyRole.SIGNATURE: "Certificat de Signature CPS",
}
INFO_PS_LABEL = "CPS_INFO_PS"
ACTIVITY_LABELS = {f"CPS_ACTIVITY_{index:02d}_PS": index for index in range(1, 17)}


@dataclass(frozen=True)
class CardCertificate:
    role: KeyRole
    cka_id: bytes
    der: bytes
    cert: x509.Certificate


def role_by_usage(cert: x509.Certificate) -> KeyRole | None:
    """The role a certificate's key usage implies (fallback when the labels differ)."""
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return None
    except x509.ExtensionNotFound:
        pass
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if usage.content_commitment:
        return KeyRole.SIGNATURE
    if usage.digital_signature:
        return KeyRole.AUTHENTICATION
    return None


def subject_value(cert: x509.Certificate, oid: x509.ObjectIdentifier, name: str) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise CardDataInvalid(
            "Le certificat de signature de la carte n'a pas le sujet attendu d'une carte CPS "
            f"(champ {name}) : la carte n'est peut-être pas une carte CPS."
        )
    return str(values[0].value).strip()


def classify_certificates(found: list[tuple[str, bytes, bytes]]) -> dict[KeyRole, CardCertificate]:
    """The card's certificates by role, from (label, CKA_ID, DER) of every certificate object."""
    by_label = {label: role for role, label in CERTIFICATE_LABELS.items()}
    certificates: dict[KeyRole, CardCertificate] = {}
    by_usage: dict[KeyRole, list[CardCertificate]] = {}
    for label, cka_id, der in found:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        role = by_label.get(label.strip())
        if role is not None and role not in certificates:
            certificates[role] = CardCertificate(role, cka_id, der, cert)
            continue
        usage_role = role_by_usage(cert)
        if usage_role is not None:
            by_usage.setdefault(usage_role, []).append(
                CardCertificate(usage_role, cka_id, der, cert))
    for role, candidates in by_usage.items():
        if role not in certificates and len(candidates) == 1:
            certificates[role] = candidates[0]
    return certificates


def holder_of(signature_certificate: x509.Certificate, info_ps: bytes) -> CardHolder:
    """The holder, from the signature certificate's subject and `CPS_INFO_PS`."""
    kind, profession, specialty = parse_info_ps(info_ps)
    cert = signature_certificate
    return CardHolder(
        national_id=subject_value(cert, NameOID.COMMON_NAME, "CN"),
        family_name=subject_value(cert, NameOID.SURNAME, "SN"),
        given_name=subject_value(cert, NameOID.GIVEN_NAME, "GN"),
        kind=kind,
        profession_code=profession,
        specialty_code=specialty,
    )
