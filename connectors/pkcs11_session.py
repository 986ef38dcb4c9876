"""One CPS card in one PKCS#11 slot, from opening to `close()`: implements
`bridge.card_port.CardSession` (spec/card-auth.md A4, A5, B3). Opened by
`connectors.pkcs11_card.Pkcs11Module.open`.

- certificates are found by their Cryptolib labels, or by key usage when the labels differ
  (nonRepudiation = signature key), and paired with their private key by CKA_ID;
- the holder comes from the signature certificate subject (CN, SN, GN) and the public data
  object `CPS_INFO_PS`; the situations from the private objects `CPS_ACTIVITY_01_PS`… (login);
- the PIN goes straight to C_Login, once: it is never kept, logged, put in a message, or retried.
  With CKF_PROTECTED_AUTHENTICATION_PATH the reader's pad (or the Cryptolib's dialog) asks it;
- signatures are CKM_RSA_PKCS over a SHA-256 DigestInfo computed by the caller (identical to
  CKM_SHA256_RSA_PKCS; the Cryptolib strips the DigestInfo and hashes nothing on the card);
- a failed PKCS#11 call becomes the `CardError` the user can act on (card removed, PIN wrong or
  blocked, logged out behind our back); the session's state follows (login and keys dropped).

All methods take one lock: asyncio code calls them through `asyncio.to_thread`.

Known limit of python-pkcs11 0.10: a login is a session opened with the PIN; when the card
refuses the PIN the library does not close that session, so one session handle per refused PIN
stays open until the card is removed or the process exits (at most three on a CPS card).
"""

from __future__ import annotations

import contextlib
import threading
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
    PinStatus,
)
from connectors.pkcs11_card_errors import (
    GONE,
    card_absent,
    not_logged_in,
    operation_failed,
    pin_refusal,
    pin_state_from_flags,
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
            raise card_absent(self._reader) from None
        try:
            self._certificates = self._find_certificates()
        except p11.PKCS11Error:
            with contextlib.suppress(p11.PKCS11Error):
                self._session.close()
            raise card_absent(self._reader) from None
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
            raise card_absent(self._reader)
        return token

    def _lost(self) -> None:
        if self._logged_in or self._keys:
            log.warning("card_removed", reader=self._reader)
        self._logged_in = False
        self._keys.clear()

    def _require_login(self) -> None:
        if not self._logged_in:
            raise not_logged_in()

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
            raise not_logged_in()

    def _adopt(self, session: pkcs11.Session) -> None:
        previous, self._session = self._session, session
        self._logged_in = True
        with contextlib.suppress(p11.PKCS11Error):
            previous.close()  # the public session: no C_Logout, the login stays on `session`

    def _login_refused(self, error: p11.PKCS11Error) -> CardError:
        refusal = pin_refusal(error, reader=self._reader, pin_tries=self._pin_tries,
                              token_now=self._token_now)
        return refusal if refusal is not None else self._failure(error)

    def _failure(self, error: p11.PKCS11Error) -> CardError:
        """The CardError for a failed PKCS#11 call (the card may have been removed)."""
        if isinstance(error, p11.UserNotLoggedIn):  # logged out behind our back
            self._logged_in = False
            self._keys.clear()
            return not_logged_in()
        if isinstance(error, p11.PinLocked):
            return CardBlocked()
        if isinstance(error, GONE) or self._token_now() is None:
            self._lost()
            return card_absent(self._reader)
        return operation_failed(error, self._reader)

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
