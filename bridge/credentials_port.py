"""Who is submitting, as the core sees it (DESIGN.md §5): public certificate data and two signing
operations. Implementations: establishment software certificates now; the CPS card (PKCS#11)
later — the private keys never reach the core."""

from __future__ import annotations

from typing import Protocol

from lxml import etree

from bridge.domain import Author
from bridge.vihf import AuthMode
from bridge.xades import SigningCertificate


class Credentials(Protocol):
    """Signing identity of the structure or the professional."""

    @property
    def auth_mode(self) -> AuthMode:
        """DIRECTE for a CPS card, INDIRECTE for the structure's certificates."""
        ...

    @property
    def issuer_dn(self) -> str:
        """DN of the certificate that signs the VIHF (the VIHF `Issuer`)."""
        ...

    @property
    def signing_certificate(self) -> SigningCertificate: ...

    def sign(self, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 / SHA-256 signature of `data` with the signature key."""
        ...

    def sign_vihf(self, assertion: etree._Element) -> etree._Element:
        """The assertion with its enveloped XML-DSig signature."""
        ...

    def may_send_as(self, author: Author) -> bool:
        """Whether these credentials may submit documents written by `author` (DESIGN.md §5).

        Establishment certificates: only for their own structure (the author's Struct_IdNat is
        the certificate's OU). A CPS card: only for its holder (the author's RPPS).
        """
        ...

    def sender(self, author: Author) -> Author:
        """The author as the DMP must see it in the VIHF and the submission set: the document's
        own for establishment certificates; for a card, its holder in the situation d'exercice
        chosen at login (the DMP checks the VIHF structure against the card)."""
        ...
