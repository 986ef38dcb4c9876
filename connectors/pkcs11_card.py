"""A CPS card through a PKCS#11 module: the ANS Cryptolib CPS in production, SoftHSM2 in tests.

Implements `bridge.card_port.CardSession` (spec/card-auth.md A4, A5, B3):

- the module is loaded and initialised once per process (`Pkcs11Module` keeps a cache keyed by
  path); a reader is a slot holding a token, named by its description (the Cryptolib names its
  slots after the PC/SC readers);
- certificates are found by their Cryptolib labels, or by key usage when the labels differ
  (nonRepudiation = signature key), and paired with their private key by CKA_ID;
- the holder comes from the signature certificate subject (CN, SN, GN) and the public data
  object `CPS_INFO_PS`; the situations from the private objects `CPS_ACTIVITY_01_PS`… (login);
- the PIN goes straight to C_Login, once: it is never kept, logged, put in a message, or retried.
  With CKF_PROTECTED_AUTHENTICATION_PATH the reader's pad (or the Cryptolib's dialog) asks it;
- signatures are CKM_RSA_PKCS over a SHA-256 DigestInfo computed by the caller (identical to
  CKM_SHA256_RSA_PKCS; the Cryptolib strips the DigestInfo and hashes nothing on the card).

All methods take one lock: asyncio code calls them through `asyncio.to_thread`.

Known limit of python-pkcs11 0.10: a login is a session opened with the PIN; when the card
refuses the PIN the library does not close that session, so one session handle per refused PIN
stays open until the card is removed or the process exits (at most three on a CPS card).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
import structlog
from pkcs11 import Attribute, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11
from pkcs11.types import SignMixin

from bridge.card_identity import (
    CardDataInvalid,
    CardHolder,
    Situation,
    parse_situation,
)
from bridge.card_port import (
    CardAbsent,
    CardBlocked,
    CardError,
    CardSession,
    KeyRole,
    NotLoggedIn,
    PinStatus,
    WrongPin,
)
from connectors.pkcs11_objects import (
    ACTIVITY_LABELS,
    CERTIFICATE_LABELS,
    INFO_PS_LABEL,
    CardCertificate,
    classify_certificates,
    holder_of,
)

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

log = structlog.get_logger("dmp_bridge.card")


CPS_PIN_TRIES = 3  # a CPS card blocks after three wrong PINs

# What the module answers when the card, the reader or the session is gone.
_GONE = (
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.SlotIDInvalid,
    p11.DeviceError,
)

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


def _not_logged_in() -> NotLoggedIn:
    return NotLoggedIn(
        "Le code PIN de la carte CPS n'a pas encore été saisi : saisissez-le dans le tableau de "
        "bord (page Carte) ou avec « dmp-bridge card login »."
    )


def _absent(reader: str) -> CardAbsent:
    return CardAbsent(
        f"La carte CPS n'est plus accessible dans le lecteur « {reader} » (carte retirée ou "
        "lecteur débranché). Réinsérez la carte et saisissez à nouveau le code PIN ; les envois "
        "reprennent ensuite."
    )


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


def pin_state_from_flags(flags: TokenFlag, pin_tries: int | None) -> tuple[int | None, bool]:
    """(tries left, blocked) from the token flags; PKCS#11 gives no exact count."""
    if flags & TokenFlag.USER_PIN_LOCKED:
        return 0, True
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        return 1, False
    if flags & TokenFlag.USER_PIN_COUNT_LOW:
        # At least one wrong PIN and more than one try left: exact only for a 3-try card.
        return (2 if pin_tries == 3 else None), False
    return pin_tries, False


class Pkcs11CardSession:
    """One card in one slot, from opening to `close()` (bridge.card_port.CardSession)."""

    def __init__(self, lib: Pkcs11Lib, slot: pkcs11.Slot, *, pin_tries: int | None) -> None:
        self._lib = lib
        self._slot_id = slot.slot_id
        self._reader = slot.slot_description.strip()
        self._pin_tries = pin_tries
        self._lock = threading.Lock()
        self._closed = False
        self._logged_in = False
        self._keys: dict[KeyRole, SignMixin] = {}
        self._holder: CardHolder | None = None
        try:
            token = slot.get_token()
            self._serial = token.serial
            self._session = token.open()
        except p11.PKCS11Error:
            raise _absent(self._reader) from None
        try:
            self._certificates = self._find_certificates()
        except p11.PKCS11Error:
            with contextlib.suppress(p11.PKCS11Error):
                self._session.close()
            raise _absent(self._reader) from None
        log.info("card_session_opened", reader=self._reader,
                 roles=sorted(role.value for role in self._certificates))

    # -- CardSession -------------------------------------------------------------------------

    @property
    def reader(self) -> str:
        """The slot description (the reader's name with the Cryptolib)."""
        return self._reader

    def certificate(self, role: KeyRole) -> bytes:
        """DER certificate of the key of `role` (public: readable before login)."""
        with self._lock:
            self._check_open()
            return self._certificate(role).der

    def holder(self) -> CardHolder:
        """Public identity: signature certificate subject and `CPS_INFO_PS`."""
        with self._lock:
            self._check_open()
            if self._holder is None:
                self._holder = self._read_holder()
            return self._holder

    def pin_status(self) -> PinStatus:
        """Tries left and blocked state from the token flags (no try is consumed)."""
        with self._lock:
            self._check_open()
            tries_left, blocked = pin_state_from_flags(self._fresh_token().flags, self._pin_tries)
            return PinStatus(tries_left=tries_left, blocked=blocked, logged_in=self._logged_in)

    def login(self, pin: str) -> None:
        """C_Login once with `pin` (ignored when the reader has its own PIN pad)."""
        with self._lock:
            self._check_open()
            if self._logged_in:
                return
            token = self._fresh_token()
            if token.flags & TokenFlag.USER_PIN_LOCKED:
                raise CardBlocked()
            secret: object = (pkcs11.PROTECTED_AUTH
                              if token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH else pin)
            del pin  # no frame of this method keeps the PIN once C_Login returned
            error: p11.PKCS11Error | None = None
            try:
                opened = token.open(user_pin=secret)
            except p11.PKCS11Error as exc:
                error = exc
            finally:
                del secret
            if error is None:
                self._adopt(opened)
                log.info("card_logged_in", reader=self._reader)
            elif isinstance(error, p11.UserAlreadyLoggedIn):
                # Another session of this process logged the card in: share its login.
                try:
                    self._adopt(self._fresh_token().open())
                except p11.PKCS11Error as exc:
                    raise self._failure(exc) from None
                log.info("card_already_logged_in", reader=self._reader)
            else:
                raise self._login_refused(error) from None

    def situations(self) -> list[Situation]:
        """The situations d'exercice, from `CPS_ACTIVITY_01_PS`… (needs login)."""
        with self._lock:
            self._check_open()
            self._fresh_token()
            self._require_login()
            raw = self._data_objects(set(ACTIVITY_LABELS))
            if not raw:
                self._check_still_logged_in()
            found = [parse_situation(ACTIVITY_LABELS[label], value)
                     for label, value in sorted(raw.items())]
            return [situation for situation in found if situation is not None]

    def sign_digest_info(self, role: KeyRole, digest_info: bytes) -> bytes:
        """CKM_RSA_PKCS signature of `digest_info` with the key of `role` (needs login)."""
        with self._lock:
            self._check_open()
            self._fresh_token()  # a removed card says so, rather than asking for its PIN
            self._require_login()
            key = self._private_key(role)
            try:
                signature = key.sign(digest_info, mechanism=Mechanism.RSA_PKCS)
            except p11.PKCS11Error as exc:
                raise self._failure(exc) from None
            log.info("card_signed", reader=self._reader, role=role.value)
            return signature

    def close(self) -> None:
        """Log out (when this session logged in) and close; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._keys.clear()
            session, self._logged_in = self._session, False
            try:
                session.close()  # C_Logout first when the session was opened with the PIN
            except p11.PKCS11Error as exc:  # the card is gone: nothing left to log out of
                log.info("card_close_after_removal", reader=self._reader,
                         error=type(exc).__name__)
            log.info("card_session_closed", reader=self._reader)

    # -- extras -------------------------------------------------------------------------------

    def present(self) -> bool:
        """Whether the same card is still in its slot (for removal watchers, EX_0.X-1040)."""
        with self._lock:
            return not self._closed and self._token_now() is not None

    # -- internals (called with the lock held) -------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CardAbsent(
                f"La session de la carte du lecteur « {self._reader} » est fermée. Réinsérez la "
                "carte ou rouvrez-la, puis saisissez le code PIN."
            )

    def _token_now(self) -> pkcs11.Token | None:
        """The token in our slot if it is still the same card, else None (fresh token info)."""
        try:
            for slot in self._lib.get_slots(token_present=True):
                if slot.slot_id == self._slot_id:
                    token = slot.get_token()
                    return token if token.serial == self._serial else None
        except p11.PKCS11Error:
            return None
        return None

    def _fresh_token(self) -> pkcs11.Token:
        token = self._token_now()
        if token is None:
            self._lost()
            raise _absent(self._reader)
        return token

    def _lost(self) -> None:
        if self._logged_in or self._keys:
            log.warning("card_removed", reader=self._reader)
        self._logged_in = False
        self._keys.clear()

    def _require_login(self) -> None:
        if not self._logged_in:
            raise _not_logged_in()

    def _check_still_logged_in(self) -> None:
        """Raise NotLoggedIn when another session logged the card out: private objects are
        then silently invisible, and a CPS card always has private keys."""
        try:
            visible = next(iter(self._session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY})), None)
        except p11.PKCS11Error as exc:
            raise self._failure(exc) from None
        if visible is None:
            self._logged_in = False
            self._keys.clear()
            raise _not_logged_in()

    def _adopt(self, session: pkcs11.Session) -> None:
        previous, self._session = self._session, session
        self._logged_in = True
        with contextlib.suppress(p11.PKCS11Error):
            previous.close()  # the public session: no C_Logout, the login stays on `session`

    def _login_refused(self, error: p11.PKCS11Error) -> CardError:
        if isinstance(error, p11.PinIncorrect):
            token = self._token_now()
            tries_left = (pin_state_from_flags(token.flags, self._pin_tries)[0]
                          if token is not None else None)
            log.warning("card_pin_wrong", reader=self._reader, tries_left=tries_left)
            if token is not None and token.flags & TokenFlag.USER_PIN_LOCKED:
                return CardBlocked()
            return WrongPin(tries_left)
        if isinstance(error, p11.PinLocked):
            log.warning("card_blocked", reader=self._reader)
            return CardBlocked()
        if isinstance(error, p11.PinLenRange | p11.PinInvalid):
            return CardError(
                "Le module de la carte a refusé ce code PIN sans le vérifier : il n'a pas la "
                "bonne longueur ou contient des caractères non admis. Vérifiez le code et "
                "saisissez-le à nouveau.",
                code="CARD_PIN_FORMAT",
            )
        if isinstance(error, p11.FunctionCancelled):
            return CardError(
                "La saisie du code PIN a été annulée sur le lecteur. Recommencez la connexion "
                "de la carte quand vous êtes prêt.",
                code="CARD_PIN_CANCELLED",
            )
        return self._failure(error)

    def _failure(self, error: p11.PKCS11Error) -> CardError:
        """The CardError for a failed PKCS#11 call (the card may have been removed)."""
        if isinstance(error, p11.UserNotLoggedIn):  # logged out behind our back
            self._logged_in = False
            self._keys.clear()
            return _not_logged_in()
        if isinstance(error, p11.PinLocked):
            return CardBlocked()
        if isinstance(error, _GONE) or self._token_now() is None:
            self._lost()
            return _absent(self._reader)
        log.error("card_operation_failed", reader=self._reader, error=type(error).__name__)
        return CardError(
            f"La carte a refusé l'opération ({type(error).__name__}). Retirez et réinsérez la "
            "carte ; si l'erreur persiste, vérifiez la version de la Cryptolib CPS.",
            code="CARD_OPERATION_FAILED",
        )

    def _find_certificates(self) -> dict[KeyRole, CardCertificate]:
        found: list[tuple[str, bytes, bytes]] = []
        for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
            values = obj.get_attributes([Attribute.LABEL, Attribute.ID, Attribute.VALUE])
            found.append((str(values[Attribute.LABEL] or ""), bytes(values[Attribute.ID] or b""),
                          bytes(values[Attribute.VALUE] or b"")))
        return classify_certificates(found)

    def _certificate(self, role: KeyRole) -> CardCertificate:
        found = self._certificates.get(role)
        if found is None:
            self._fresh_token()
            raise CardDataInvalid(
                f"La carte ne présente pas de certificat de {role.value} CPS "
                f"(« {CERTIFICATE_LABELS[role]} ») : ce n'est peut-être pas une carte CPS."
            )
        return found

    def _data_objects(self, labels: set[str]) -> dict[str, bytes]:
        """Values of the data objects named `labels` that this session can see."""
        values: dict[str, bytes] = {}
        try:
            for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.DATA}):
                label = str(obj[Attribute.LABEL] or "").strip()
                if label in labels and label not in values:
                    values[label] = bytes(obj[Attribute.VALUE] or b"")
        except p11.PKCS11Error as exc:
            raise self._failure(exc) from None
        return values

    def _read_holder(self) -> CardHolder:
        cert = self._certificate(KeyRole.SIGNATURE).cert
        info = self._data_objects({INFO_PS_LABEL}).get(INFO_PS_LABEL)
        if info is None:
            self._fresh_token()
            raise CardDataInvalid(
                f"La carte ne présente pas l'objet {INFO_PS_LABEL} (type de carte, profession) : "
                "ce n'est peut-être pas une carte CPS, ou la Cryptolib CPS est trop ancienne."
            )
        return holder_of(cert, info)

    def _private_key(self, role: KeyRole) -> SignMixin:
        key = self._keys.get(role)
        if key is not None:
            return key
        cka_id = self._certificate(role).cka_id
        try:
            keys = list(self._session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: cka_id}))
        except p11.PKCS11Error as exc:
            raise self._failure(exc) from None
        if len(keys) != 1 or not isinstance(keys[0], SignMixin):
            self._fresh_token()
            self._check_still_logged_in()
            raise CardDataInvalid(
                f"La clé privée de {role.value} de la carte est introuvable (aucune clé ou "
                "plusieurs clés portent l'identifiant de son certificat) : la carte n'est "
                "peut-être pas une carte CPS."
            )
        self._keys[role] = keys[0]
        return keys[0]



if TYPE_CHECKING:  # mypy proves the session is a bridge.card_port.CardSession

    def _is_a_card_session(session: Pkcs11CardSession) -> CardSession:
        return session
