"""`CardSession` over PC/SC APDUs: the TEST / EMULATOR profile of the CPS card.

This speaks the file layout of the project's emulated CPS-like card (tests/card/emulator.py):
the CPS3 IAS application AID, an identity file, the two certificates, the 16 situation files,
VERIFY with a try counter, MSE SET + PSO COMPUTE DIGITAL SIGNATURE / INTERNAL AUTHENTICATE over
a SHA-256 DigestInfo. Production reads real CPS cards through PKCS#11 (the ANS Cryptolib CPS),
because the real on-card layout is not public (spec/card-auth.md A3, B5.15); the APDUs for
keys and PIN are the CPS3 ones, the identity files are ours.

Rules kept here: the PIN is sent once per `login` and never kept, logged or retried; APDU data
is never logged (only the command header and status word, and not even the length for VERIFY,
CHANGE REFERENCE DATA and RESET RETRY COUNTER); `pin_status()` never consumes a try. A lock makes
a session safe to call from several threads (asyncio code calls it through `asyncio.to_thread`).
"""

from __future__ import annotations

import threading
from types import TracebackType

import structlog
from smartcard import scard

from bridge.card_identity import (
    CardDataInvalid,
    CardHolder,
    Situation,
    parse_info_ps,
    parse_situation,
)
from bridge.card_port import (
    CardAbsent,
    CardBlocked,
    CardError,
    KeyRole,
    NotLoggedIn,
    PinStatus,
    WrongPin,
)
from connectors.pcsc_monitor import SERVICE_LOST

log = structlog.get_logger("dmp_bridge.card")

CPS3_AID = bytes.fromhex("E8 28 BD 08 0F 80 25 00 00 01 FF 00 10")
FID_IDENTITY = 0xD001
FID_CERTIFICATE = {KeyRole.AUTHENTICATION: 0xE020, KeyRole.SIGNATURE: 0xE010}
FID_FIRST_SITUATION = 0xD120
SITUATION_COUNT = 16
KEY_REFERENCE = {KeyRole.AUTHENTICATION: 0x20, KeyRole.SIGNATURE: 0x10}
MSE_TEMPLATE = {KeyRole.AUTHENTICATION: 0xA4, KeyRole.SIGNATURE: 0xB6}
OPERATION_HEADER = {KeyRole.AUTHENTICATION: bytes.fromhex("00880000"),
                    KeyRole.SIGNATURE: bytes.fromhex("002A9E9A")}
PIN_REFERENCE = 0x01
PIN_BLOCK = 8  # ASCII digits padded with FF
MAX_READ = 0xE7  # max_recv_size of the CPS3 (Cryptolib card-cps3.c)
PIN_INSTRUCTIONS = frozenset({0x20, 0x24, 0x2C})  # VERIFY, CHANGE REFERENCE DATA, RESET RETRY
TAG_NATIONAL_ID, TAG_FAMILY_NAME, TAG_GIVEN_NAME, TAG_INFO_PS = 0x80, 0x81, 0x82, 0x83

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_BLOCKED = 0x6983
SW_FILE_NOT_FOUND = 0x6A82

_CARD_GONE = frozenset({
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_W_UNPOWERED_CARD,
    scard.SCARD_W_UNRESPONSIVE_CARD,
})
_READER_GONE = frozenset({scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE})


def _absent(reader: str, hresult: int) -> CardError:
    """The user-facing error for a PC/SC failure code."""
    if hresult in _CARD_GONE:
        return CardAbsent(
            f"La carte a été retirée du lecteur « {reader} » (ou réinitialisée) : "
            "réinsérez votre carte CPS puis saisissez de nouveau son code PIN."
        )
    if hresult in _READER_GONE:
        return CardAbsent(
            f"Le lecteur de cartes « {reader} » n'est plus disponible : vérifiez qu'il est "
            "bien branché, puis réinsérez votre carte CPS."
        )
    if hresult in SERVICE_LOST:
        return CardAbsent(
            "Le service des cartes à puce (PC/SC) ne répond pas : vérifiez qu'il est démarré "
            "(service « Carte à puce » sous Windows, pcscd sous Linux), puis réinsérez la carte."
        )
    return CardError(
        f"La communication avec la carte du lecteur « {reader} » a échoué "
        f"({scard.SCardGetErrorMessage(hresult)}) : retirez la carte et réinsérez-la."
    )


def list_readers() -> list[str]:
    """The PC/SC readers present now. Raises CardAbsent when the service does not answer."""
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise _absent("", hresult)
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        if hresult == scard.SCARD_S_SUCCESS:
            return [str(r) for r in readers]
        if hresult in SERVICE_LOST:
            raise _absent("", hresult)
        return []
    finally:
        scard.SCardReleaseContext(context)


def open_apdu_session(reader: str) -> ApduCardSession:
    """Connect to the card in `reader` and select its CPS application.

    Raises CardAbsent (no card, no reader, no PC/SC service) or CardDataInvalid (not a CPS).
    """
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise _absent(reader, hresult)
    hresult, card, protocol = scard.SCardConnect(
        context, reader, scard.SCARD_SHARE_SHARED,
        scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
    )
    if hresult != scard.SCARD_S_SUCCESS:
        scard.SCardReleaseContext(context)
        raise _absent(reader, hresult)
    session = ApduCardSession(reader, context, card, protocol)
    try:
        session.select_application()
    except BaseException:
        session.close()
        raise
    log.info("card_session_opened", reader=reader)
    return session


class ApduCardSession:
    """One emulated CPS card in one reader; see `open_apdu_session`."""

    def __init__(self, reader: str, context: int, card: int, protocol: int) -> None:
        self._reader = reader
        self._context: int | None = context
        self._card: int | None = card
        self._protocol = protocol
        self._lock = threading.RLock()
        self._holder: CardHolder | None = None

    def __enter__(self) -> ApduCardSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def reader(self) -> str:
        return self._reader

    # -- CardSession --------------------------------------------------------------------------

    def certificate(self, role: KeyRole) -> bytes:
        with self._lock:
            return self._read_file(FID_CERTIFICATE[role], f"certificat {role.value}")

    def holder(self) -> CardHolder:
        with self._lock:
            if self._holder is None:
                fields = _parse_tlvs(self._read_file(FID_IDENTITY, "identité"))
                try:
                    national_id = fields[TAG_NATIONAL_ID].decode("ascii")
                    family_name = fields[TAG_FAMILY_NAME].decode("utf-8")
                    given_name = fields[TAG_GIVEN_NAME].decode("utf-8")
                    info_ps = fields[TAG_INFO_PS]
                except (KeyError, UnicodeDecodeError):
                    raise CardDataInvalid(
                        "Le fichier d'identité de la carte est incomplet ou illisible : la "
                        "carte n'est peut-être pas une carte CPS de test."
                    ) from None
                kind, profession, specialty = parse_info_ps(info_ps)
                self._holder = CardHolder(national_id, family_name, given_name, kind,
                                          profession, specialty)
            return self._holder

    def pin_status(self) -> PinStatus:
        with self._lock:
            _, sw = self._transmit(bytes([0x00, 0x20, 0x00, PIN_REFERENCE]))
            if sw == SW_OK:
                return PinStatus(tries_left=None, logged_in=True)
            if sw == SW_BLOCKED:
                return PinStatus(tries_left=0, blocked=True)
            if sw & 0xFFF0 == 0x63C0:
                return PinStatus(tries_left=sw & 0x0F, blocked=sw & 0x0F == 0)
            raise self._refused(sw, "état du code PIN")

    def login(self, pin: str) -> None:
        if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= PIN_BLOCK):
            raise CardError(
                "Le code PIN doit comporter de 4 à 8 chiffres ; il n'a pas été présenté à la "
                "carte (aucun essai consommé).",
                code="CARD_PIN_FORMAT",
            )
        block = bytearray(pin.encode("ascii").ljust(PIN_BLOCK, b"\xff"))
        apdu = bytearray([0x00, 0x20, 0x00, PIN_REFERENCE, PIN_BLOCK]) + block
        try:
            with self._lock:
                _, sw = self._transmit(bytes(apdu))
        finally:
            block[:] = bytes(len(block))
            apdu[:] = bytes(len(apdu))
        if sw == SW_OK:
            log.info("card_pin_accepted", reader=self._reader)
            return
        if sw in (SW_BLOCKED, 0x63C0):
            log.warning("card_blocked", reader=self._reader)
            raise CardBlocked()
        if sw & 0xFFF0 == 0x63C0:
            log.warning("card_pin_wrong", reader=self._reader, tries_left=sw & 0x0F)
            raise WrongPin(sw & 0x0F)
        raise self._refused(sw, "vérification du code PIN")

    def situations(self) -> list[Situation]:
        with self._lock:
            found = []
            for number in range(SITUATION_COUNT):
                raw = self._read_file(FID_FIRST_SITUATION + number,
                                      f"situation d'exercice n° {number + 1}", optional=True)
                situation = parse_situation(number + 1, raw) if raw else None
                if situation is not None:
                    found.append(situation)
            return found

    def sign_digest_info(self, role: KeyRole, digest_info: bytes) -> bytes:
        if len(digest_info) > 0xFF:
            raise ValueError("a DigestInfo is at most 255 bytes")
        key = bytes([0x84, 0x01, KEY_REFERENCE[role]])
        mse = bytes([0x00, 0x22, 0x41, MSE_TEMPLATE[role], len(key)]) + key
        # PSO COMPUTE DIGITAL SIGNATURE for the signature key, INTERNAL AUTHENTICATE otherwise
        header = OPERATION_HEADER[role]
        with self._lock, self._transaction():
            _, sw = self._transmit(mse)
            if sw != SW_OK:
                raise self._refused(sw, f"choix de la clé de {role.value}")
            signature, sw = self._transmit(
                header + bytes([len(digest_info)]) + digest_info + b"\x00")
            if sw != SW_OK or not signature:
                raise self._refused(sw, f"signature avec la clé de {role.value}")
            return signature

    def close(self) -> None:
        """Reset the card (which logs out) and release it; idempotent."""
        with self._lock:
            card, context = self._card, self._context
            self._card = self._context = None
            if card is not None:
                scard.SCardDisconnect(card, scard.SCARD_RESET_CARD)
            if context is not None:
                scard.SCardReleaseContext(context)
                log.info("card_session_closed", reader=self._reader)

    # -- APDU plumbing ------------------------------------------------------------------------

    def select_application(self) -> None:
        """SELECT the CPS3 application (done by `open_apdu_session`)."""
        with self._lock:
            _, sw = self._transmit(bytes([0x00, 0xA4, 0x04, 0x0C, len(CPS3_AID)]) + CPS3_AID)
            if sw == SW_FILE_NOT_FOUND:
                raise CardDataInvalid(
                    f"La carte du lecteur « {self._reader} » n'a pas d'application CPS : "
                    "insérez une carte CPS (pas une carte Vitale ni une carte bancaire)."
                )
            if sw != SW_OK:
                raise self._refused(sw, "sélection de l'application CPS")

    def _transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one APDU; (response data, status word). Raises CardAbsent when the card left."""
        if self._card is None:
            raise CardAbsent(
                f"La session de la carte du lecteur « {self._reader} » est fermée : réinsérez "
                "la carte pour en ouvrir une nouvelle."
            )
        hresult, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
        if hresult != scard.SCARD_S_SUCCESS or len(response) < 2:
            log.warning("card_transmit_failed", reader=self._reader, ins=f"{apdu[1]:02X}",
                        error=scard.SCardGetErrorMessage(hresult))
            error = _absent(self._reader, hresult)
            if isinstance(error, CardAbsent):
                self.close()
            raise error
        sw = (response[-2] << 8) | response[-1]
        if apdu[1] in PIN_INSTRUCTIONS:
            log.debug("card_apdu", ins=f"{apdu[1]:02X}", sw=f"{sw:04X}")
        else:
            log.debug("card_apdu", header=bytes(apdu[:4]).hex(), sent=max(0, len(apdu) - 5),
                      received=len(response) - 2, sw=f"{sw:04X}")
        return bytes(response[:-2]), sw

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _read_file(self, fid: int, what: str, *, optional: bool = False) -> bytes:
        """The whole content of EF `fid` (SELECT with FCP, then READ BINARY by chunks)."""
        with self._transaction():
            fcp, sw = self._transmit(bytes([0x00, 0xA4, 0x02, 0x04, 0x02]) + fid.to_bytes(2, "big"))
            if sw == SW_FILE_NOT_FOUND and optional:
                return b""
            if sw != SW_OK:
                raise self._refused(sw, f"lecture ({what})")
            size = _fcp_size(fcp)
            content = b""
            while len(content) < size:
                wanted = min(MAX_READ, size - len(content))
                offset = len(content).to_bytes(2, "big")
                chunk, sw = self._transmit(bytes([0x00, 0xB0, *offset, wanted]))
                if sw not in (SW_OK, SW_END_OF_FILE) or not chunk:
                    raise self._refused(sw, f"lecture ({what})")
                content += chunk
            return content

    def _refused(self, sw: int, what: str) -> CardError:
        if sw == SW_SECURITY_NOT_SATISFIED:
            return NotLoggedIn(
                "Le code PIN de la carte n'a pas encore été saisi : saisissez-le (tableau de "
                "bord, page Carte, ou dmp-bridge card login) puis recommencez."
            )
        if sw == SW_BLOCKED:
            return CardBlocked()
        return CardError(
            f"La carte a refusé l'opération « {what} » (code {sw:04X}) : retirez-la et "
            "réinsérez-la ; si cela se reproduit, la carte n'est peut-être pas une carte CPS."
        )


class _Transaction:
    """SCardBeginTransaction … SCardEndTransaction: no other application interleaves APDUs."""

    def __init__(self, session: ApduCardSession) -> None:
        self._session = session

    def __enter__(self) -> None:
        card = self._session._card
        if card is None:
            return
        hresult = scard.SCardBeginTransaction(card)
        if hresult != scard.SCARD_S_SUCCESS:
            error = _absent(self._session.reader, hresult)
            if isinstance(error, CardAbsent):
                self._session.close()
            raise error

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        card = self._session._card
        if card is not None:
            scard.SCardEndTransaction(card, scard.SCARD_LEAVE_CARD)


def _parse_tlvs(data: bytes) -> dict[int, bytes]:
    """Top-level BER-TLVs with one-byte tags (short or 81/82 long lengths)."""
    fields: dict[int, bytes] = {}
    pos = 0
    while pos + 2 <= len(data):
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[pos:pos + count], "big")
            pos += count
        if pos + length > len(data):
            raise CardDataInvalid("Un fichier de la carte est tronqué : réinsérez la carte.")
        fields[tag] = data[pos:pos + length]
        pos += length
    return fields


def _fcp_size(fcp: bytes) -> int:
    """The file size (tag 80) of an FCP template (62)."""
    outer = _parse_tlvs(fcp).get(0x62)
    size = _parse_tlvs(outer).get(0x80) if outer is not None else None
    if size is None:
        raise CardDataInvalid("La carte n'indique pas la taille d'un fichier : réinsérez-la.")
    return int.from_bytes(size, "big")
