"""A logged-in CPS card as the bridge's credentials (direct mode, spec/card-auth.md A1–A2).

- TLS: the card's authentication key (`connectors.card_tls`: the key never leaves the card);
- VIHF and XAdES: the card's signature key, RSA-SHA256, hash computed here, DigestInfo signed
  by the card (PKCS#11 `CKM_RSA_PKCS`, or PSO COMPUTE DIGITAL SIGNATURE on the emulated card);
- who: the holder's RPPS, name and profession from the card, and the structure and sector of
  the situation d'exercice chosen at login (EX_GEN-1370) — the VIHF `Identifiant_Structure`
  must be the card's Struct_IdNat, not a configured value.

A card sends only its own holder's documents: `may_send_as` compares RPPS numbers.
Card signatures per submission set: one XAdES signature (the whole lot's manifest) and one VIHF
signature; plus one TLS CertificateVerify per new TLS connection with the authentication key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from bridge.card_identity import CardHolder, Situation, holder_author
from bridge.card_port import CardAbsent, CardSession, KeyRole, NotLoggedIn, sha256_digest_info
from bridge.domain import Author
from bridge.vihf import AuthMode
from bridge.xades import SigningCertificate
from connectors.card_signing_key import CardRsaKey
from connectors.software_credentials import subject_dn
from connectors.vihf_signature import sign_vihf


class CardCredentials:
    """The credentials of one logged-in card, for one situation d'exercice."""

    def __init__(self, session: CardSession, holder: CardHolder, situation: Situation, *,
                 specialty_display: str, on_lost: Callable[[], None] | None = None) -> None:
        """`on_lost` is called (from the signing thread) when a signature finds the card
        withdrawn or logged out, before the error goes on."""
        holder.check_may_feed()
        self._session = session
        self._on_lost = on_lost
        self.holder = holder
        self.situation = situation
        self.author = holder_author(holder, situation, specialty_display=specialty_display)
        self._sign_der = session.certificate(KeyRole.SIGNATURE)
        self._sign_cert = x509.load_der_x509_certificate(self._sign_der)
        self.auth_certificate_der = session.certificate(KeyRole.AUTHENTICATION)

    @property
    def reader(self) -> str:
        return self._session.reader

    @property
    def auth_mode(self) -> AuthMode:
        return AuthMode.DIRECTE

    @property
    def issuer_dn(self) -> str:
        """DN of the card's signature certificate (the VIHF `Issuer`)."""
        return subject_dn(self._sign_cert)

    @property
    def signing_certificate(self) -> SigningCertificate:
        return SigningCertificate(
            der=self._sign_der,
            issuer_name=self._sign_cert.issuer.rfc4514_string(),
            serial_number=self._sign_cert.serial_number,
        )

    def _signature(self, role: KeyRole, digest_info: bytes) -> bytes:
        try:
            return self._session.sign_digest_info(role, digest_info)
        except (CardAbsent, NotLoggedIn):
            if self._on_lost is not None:
                self._on_lost()
            raise

    def sign(self, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 / SHA-256 over `data` by the card's signature key."""
        return self._signature(KeyRole.SIGNATURE, sha256_digest_info(data))

    def sign_tls(self, digest_info: bytes) -> bytes:
        """The TLS CertificateVerify signature, by the card's authentication key."""
        return self._signature(KeyRole.AUTHENTICATION, digest_info)

    def sign_vihf(self, assertion: etree._Element) -> etree._Element:
        """Enveloped XML-DSig of the assertion (exc-c14n, RSA-SHA256) by the signature key."""
        key = cast(rsa.RSAPrivateKey, CardRsaKey(self._session, KeyRole.SIGNATURE))
        try:
            return sign_vihf(assertion, key, self._sign_cert)
        except (CardAbsent, NotLoggedIn):
            if self._on_lost is not None:
                self._on_lost()
            raise

    def may_send_as(self, author: Author) -> bool:
        """A card sends only the documents of its holder (same RPPS) written in the situation
        chosen at login (same structure): the DMP sees that structure in the VIHF, and it must
        be the document's. A document of the holder's other practice waits for a login in that
        situation."""
        return (author.rpps, author.structure_id) == (self.author.rpps,
                                                      self.author.structure_id)

    def sender(self, author: Author) -> Author:
        """The author as the DMP sees it: the holder, in the chosen situation."""
        return self.author
