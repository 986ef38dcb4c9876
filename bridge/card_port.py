"""A CPS card as the rest of the bridge sees it (DESIGN.md §5; spec/card-auth.md).

Two implementations live in `connectors/`: PKCS#11 (the ANS Cryptolib CPS in production,
SoftHSM2 in tests) and, for the project's emulated card, APDUs over PC/SC. Both sign the same
way a card does: the hash is computed here, the card signs a SHA-256 DigestInfo with PKCS#1
v1.5, and no private key is ever in memory.

The PIN is an argument of `login` and nothing else: no implementation keeps it, logs it, or
retries it (a card blocks after three wrong PINs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bridge.card_identity import CardHolder, Situation
from bridge.errors import BridgeError

# DER header of a SHA-256 DigestInfo (PKCS#1 v1.5, RFC 8017 §9.2 note 1).
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def sha256_digest_info(data: bytes) -> bytes:
    """The DigestInfo a card signs for RSA-SHA256 over `data`."""
    return SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(data).digest()


class KeyRole(StrEnum):
    """The card's two keys: authentication (TLS) and signature (VIHF, XAdES)."""

    AUTHENTICATION = "authentification"
    SIGNATURE = "signature"


class CardError(BridgeError):
    """The card cannot do what was asked; the message says what the user should do."""

    code = "CARD_ERROR"
    event = "card_error"


class CardAbsent(CardError):
    """No card (removed, reader unplugged, PC/SC service stopped): an environment error."""

    code = "CARD_ABSENT"
    event = "card_absent"


class NotLoggedIn(CardError):
    """The card is there but its PIN was not typed yet."""

    code = "CARD_PIN_NEEDED"
    event = "card_pin_needed"


class WrongPin(CardError):
    """The card refused the PIN. Never retried automatically."""

    code = "CARD_PIN_WRONG"
    event = "card_pin_wrong"

    def __init__(self, tries_left: int | None) -> None:
        self.tries_left = tries_left
        if tries_left is None:
            left = "Le nombre d'essais restants n'est pas connu"
        elif tries_left == 1:
            left = "Attention : il reste UN seul essai avant le blocage de la carte"
        else:
            left = f"Il reste {tries_left} essais avant le blocage de la carte"
        super().__init__(
            f"Code PIN incorrect. {left}. Vérifiez le code avant de le saisir à nouveau ; "
            "la passerelle ne le ressaisit jamais d'elle-même."
        )


class CardBlocked(CardError):
    """Too many wrong PINs: the card must be unblocked with its PUK or by the ANS."""

    code = "CARD_BLOCKED"
    event = "card_blocked"

    def __init__(self) -> None:
        super().__init__(
            "La carte est bloquée (trop de codes PIN faux). Débloquez-la avec son code de "
            "déblocage (PUK) dans l'outil de gestion de la carte (CPS-Gestion), ou contactez "
            "l'ANS ; aucun document ne part avec cette carte d'ici là."
        )


@dataclass(frozen=True)
class PinStatus:
    """What the card says about its PIN before anyone types it."""

    tries_left: int | None  # None when the card or module does not say
    blocked: bool = False
    logged_in: bool = False

    def warning_fr(self) -> str | None:
        """A warning to show next to the PIN field, or None."""
        if self.blocked:
            return CardBlocked().message_fr
        if self.tries_left == 1:
            return "Attention : dernier essai avant le blocage de la carte."
        if self.tries_left is not None and self.tries_left < 3:
            return f"Attention : il reste {self.tries_left} essais avant le blocage de la carte."
        return None


class CardSession(Protocol):
    """One card in one reader, from insertion to removal."""

    @property
    def reader(self) -> str:
        """The PC/SC reader name (or the PKCS#11 slot description)."""
        ...

    def certificate(self, role: KeyRole) -> bytes:
        """DER certificate of the key of `role` (public: readable before login)."""
        ...

    def holder(self) -> CardHolder:
        """Public identity (certificate subject and CPS_INFO_PS), before login."""
        ...

    def pin_status(self) -> PinStatus:
        """Tries left and blocked state, without consuming a try."""
        ...

    def login(self, pin: str) -> None:
        """Verify the PIN once. Raises WrongPin, CardBlocked or CardAbsent."""
        ...

    def situations(self) -> list[Situation]:
        """The situations d'exercice (private data: needs login)."""
        ...

    def sign_digest_info(self, role: KeyRole, digest_info: bytes) -> bytes:
        """PKCS#1 v1.5 signature of a DigestInfo with the key of `role` (needs login)."""
        ...

    def close(self) -> None:
        """Log out and release the card (idempotent)."""
        ...
