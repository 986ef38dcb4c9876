"""A CPS card through a PKCS#11 module: the ANS Cryptolib CPS in production, SoftHSM2 in tests.

This module finds the card (spec/card-auth.md A4): the module is loaded and initialised once per
process (`Pkcs11Module` keeps a cache keyed by path); a reader is a slot holding a token, named
by its description (the Cryptolib names its slots after the PC/SC readers); `Pkcs11Module.open`
opens a session on the card of one reader. The session, which implements
`bridge.card_port.CardSession` (login, certificates, holder, signatures), is
`connectors.pkcs11_session.Pkcs11CardSession`, importable from here too.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
import structlog
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11

from bridge.card_port import CardAbsent, CardError
from connectors.pkcs11_card_errors import pin_state_from_flags
from connectors.pkcs11_objects import CERTIFICATE_LABELS
from connectors.pkcs11_session import Pkcs11CardSession

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

__all__ = [
    "CERTIFICATE_LABELS",
    "CPS_PIN_TRIES",
    "CardModuleUnusable",
    "Pkcs11CardSession",
    "Pkcs11Module",
    "module_loaded",
    "pin_state_from_flags",
]

log = structlog.get_logger("dmp_bridge.card")


CPS_PIN_TRIES = 3  # a CPS card blocks after three wrong PINs

_LIBS: dict[str, Pkcs11Lib] = {}
_LIBS_LOCK = threading.Lock()


class CardModuleUnusable(CardError):
    """The PKCS#11 module cannot be loaded or initialised (missing Cryptolib, bad path)."""

    code = "CARD_MODULE_UNUSABLE"
    event = "card_module_unusable"


def _module_key(path: str | Path) -> str:
    """The cache key: the absolute path of an existing file, else the name as given (a bare
    library name is searched by the system loader, e.g. the Cryptolib DLL on Windows)."""
    candidate = Path(path)
    return str(candidate.resolve()) if candidate.exists() else str(path)


def module_loaded(path: str | Path) -> bool:
    """Whether this process already loaded (and initialised) the module at `path`."""
    with _LIBS_LOCK:
        return _module_key(path) in _LIBS


def _load(path: str | Path) -> Pkcs11Lib:
    key = _module_key(path)
    with _LIBS_LOCK:
        lib = _LIBS.get(key)
        if lib is None:
            try:
                lib = pkcs11.lib(key)
            except p11.PKCS11Error as exc:
                log.error("card_module_unusable", module=key, error=type(exc).__name__)
                raise CardModuleUnusable(
                    f"Le module PKCS#11 de la carte CPS ({key}) ne peut pas être chargé "
                    f"({type(exc).__name__}). Installez la Cryptolib CPS de l'ANS, ou corrigez "
                    "le chemin du module dans la configuration."
                ) from None
            _LIBS[key] = lib
        return lib


class Pkcs11Module:
    """A PKCS#11 module, loaded once per process whatever the number of instances."""

    def __init__(self, path: str | Path) -> None:
        self.path = _module_key(path)
        self._lib = _load(self.path)

    def _slots(self) -> list[pkcs11.Slot]:
        """Slots holding a readable, initialised token (a card, with the Cryptolib)."""
        try:
            slots = list(self._lib.get_slots(token_present=True))
        except p11.PKCS11Error as exc:
            raise CardAbsent(
                "Les lecteurs de carte ne répondent pas "
                f"({type(exc).__name__}) : vérifiez que le lecteur est branché et que le "
                "service de carte à puce (PC/SC) est démarré."
            ) from None
        readable = []
        for slot in slots:
            try:
                if slot.get_token().flags & TokenFlag.TOKEN_INITIALIZED:
                    readable.append(slot)
            except p11.PKCS11Error:  # pulled out while we looked, or unreadable
                continue
        return readable

    def readers(self) -> list[str]:
        """Names of the readers (slot descriptions) that hold a card."""
        return [slot.slot_description.strip() for slot in self._slots()]

    def cards(self) -> dict[str, str]:
        """Reader name → serial number of the card (token) in it, for every card present."""
        found = {}
        for slot in self._slots():
            try:
                found[slot.slot_description.strip()] = slot.get_token().serial.decode(
                    "ascii", "replace").strip()
            except p11.PKCS11Error:  # pulled out while we looked
                continue
        return found

    def open(
        self, reader: str | None = None, *, pin_tries: int | None = CPS_PIN_TRIES
    ) -> Pkcs11CardSession:
        """A session on the card in `reader`, or in the only reader holding one.

        `pin_tries`: how many tries the card's PIN has (3 on a CPS), used to turn the token
        flags into a count; None when unknown.
        """
        slots = self._slots()
        if reader is not None:
            chosen = [slot for slot in slots if slot.slot_description.strip() == reader]
            if not chosen:
                raise CardAbsent(
                    f"Aucune carte dans le lecteur « {reader} ». Insérez la carte CPS dans ce "
                    "lecteur, ou choisissez un autre lecteur : "
                    + (" ; ".join(self.readers()) or "aucun lecteur ne contient de carte")
                    + "."
                )
            slot = chosen[0]
        elif len(slots) == 1:
            slot = slots[0]
        elif not slots:
            raise CardAbsent(
                "Aucune carte CPS n'est insérée. Insérez la carte dans le lecteur, puis "
                "réessayez."
            )
        else:
            raise CardError(
                "Plusieurs lecteurs contiennent une carte ; indiquez lequel utiliser : "
                + " ; ".join(slot.slot_description.strip() for slot in slots) + ".",
                code="CARD_READER_NEEDED",
            )
        return Pkcs11CardSession(self._lib, slot, pin_tries=pin_tries)
