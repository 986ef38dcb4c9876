"""A card key that signxml takes for a `cryptography` RSA private key (spec/card-auth.md B4).

signxml has no PKCS#11 support, but for RSA it only calls `key.sign(data, padding, algorithm)`
(and `public_key()` when it writes a KeyValue). `CardRsaKey` answers those calls: it hashes the
data here, builds the SHA-256 DigestInfo and lets the card sign it with PKCS#1 v1.5, so the
private key never leaves the card. Anything but PKCS#1 v1.5 with SHA-256 is refused: that is
what the VIHF and the XAdES signatures use, and what every CPS card can do.

This leans on signxml internals (pinned `signxml>=5.2,<6`); tests sign a SAML assertion through
this class and verify it, so an upgrade that breaks the duck type fails loudly.
"""

from __future__ import annotations

from typing import NoReturn, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from bridge.card_identity import CardDataInvalid
from bridge.card_port import CardError, CardSession, KeyRole, sha256_digest_info


class CardSignatureUnsupported(CardError):
    """Someone asked the card for a signature scheme it is not used for (a programming error)."""

    code = "CARD_SIGNATURE_UNSUPPORTED"
    event = "card_signature_unsupported"


class CardRsaKey:
    """The key of `role` on the card in `session`, shaped like `rsa.RSAPrivateKey` for signxml.

    Pass `as_private_key()` where a library's signature wants an `RSAPrivateKey`.
    """

    def __init__(self, session: CardSession, role: KeyRole) -> None:
        self._session = session
        self._role = role
        der = session.certificate(role)
        try:
            self._certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CardDataInvalid(
                f"Le certificat de {role.value} de la carte est illisible : la carte n'est "
                "peut-être pas une carte CPS."
            ) from None
        public = self._certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise CardDataInvalid(
                f"La clé de {role.value} de la carte n'est pas une clé RSA : la passerelle ne "
                "sait signer qu'avec une carte CPS (RSA)."
            )
        self._public = public

    @property
    def role(self) -> KeyRole:
        """Which of the card's keys this is."""
        return self._role

    @property
    def certificate(self) -> x509.Certificate:
        """The key's certificate, as read from the card."""
        return self._certificate

    @property
    def key_size(self) -> int:
        """Modulus size in bits, from the certificate."""
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        """The public key of the certificate."""
        return self._public

    def sign(
        self,
        data: bytes,
        padding: asym_padding.AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | Prehashed,
    ) -> bytes:
        """RSA PKCS#1 v1.5 SHA-256 signature of `data`, made by the card (needs its PIN)."""
        if not isinstance(padding, asym_padding.PKCS1v15):
            raise CardSignatureUnsupported(
                f"Signature demandée avec un remplissage {padding.name} : la carte ne signe "
                "ici qu'en RSA PKCS#1 v1.5 (RSA-SHA256)."
            )
        if not isinstance(algorithm, hashes.SHA256):
            name = algorithm.name if isinstance(algorithm, hashes.HashAlgorithm) else "fournie"
            raise CardSignatureUnsupported(
                f"Signature demandée avec l'empreinte {name} : la carte ne signe "
                "ici qu'en RSA-SHA256 (données entières, empreinte calculée par la passerelle)."
            )
        return self._session.sign_digest_info(self._role, sha256_digest_info(bytes(data)))

    def as_private_key(self) -> rsa.RSAPrivateKey:
        """This object typed as what signxml (and mypy) expect; it only implements `sign`,
        `public_key` and `key_size`."""
        return cast(rsa.RSAPrivateKey, self)

    def _on_card(self) -> NoReturn:
        raise CardSignatureUnsupported(
            "La clé privée reste sur la carte CPS : elle ne peut être ni lue ni exportée, "
            "seulement utilisée pour signer."
        )

    def private_numbers(self) -> NoReturn:
        """Refused: the private key cannot leave the card."""
        self._on_card()

    def private_bytes(self, *_args: object, **_kwargs: object) -> NoReturn:
        """Refused: the private key cannot leave the card."""
        self._on_card()

    def decrypt(self, *_args: object, **_kwargs: object) -> NoReturn:
        """Refused: the card's keys are used here to sign only."""
        self._on_card()
