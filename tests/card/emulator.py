"""A CPS-like smart card, emulated in software for the tests (spec/card-auth.md B2).

It answers the APDUs a CPS3 middleware sends (SELECT, READ BINARY, VERIFY, MSE SET, PSO COMPUTE
DIGITAL SIGNATURE, INTERNAL AUTHENTICATE) with RSA-2048 keys held by this process: software keys,
TEST ONLY. The real CPS file layout is not public, so the files below are OUR layout; production
reads real cards through the ANS Cryptolib (PKCS#11), never through these files.

Layout of the emulated card
---------------------------
- ATR ``3B 8C 80 01`` + ``"DMPB-CPSTEST"`` + TCK (T=1).
- Application: ``SELECT 00 A4 04 00`` with the CPS3 AID ``E8 28 BD 08 0F 80 25 00 00 01 FF 00 10``.
  Every EF below is reachable once the application is selected (power-up or reset forgets it).
- ``SELECT 00 A4 02 P2 02 <FID>``: P2 ``0C`` answers nothing, P2 ``04`` answers an FCP
  ``62 { 80 02 <size>, 82 01 01, 83 02 <FID> }``. Unknown FID: ``6A82``.
- ``READ BINARY 00 B0 <offset> <Le>`` on the selected EF; a read past the end answers what is
  left with ``6282``; an offset past the end ``6B00``; a private EF without the PIN ``6982``.

=======  ==========  ===================================================================
FID      access      content
=======  ==========  ===================================================================
D001     public      identity, BER-TLV: ``80`` national id (PS_IdNat, ASCII), ``81`` family
                     name, ``82`` given name (UTF-8), ``83`` CPS_INFO_PS (ASCII, the layout
                     of `bridge.card_identity.parse_info_ps`)
E020     public      authentication certificate (DER), key reference ``20``
E010     public      signature certificate (DER), key reference ``10``
D120…    private     situations d'exercice 1 … 16 (`bridge.card_identity.encode_situation`);
D12F                 an unused situation is an empty file
=======  ==========  ===================================================================

- PIN reference ``01``: ``VERIFY 00 20 00 01 08 <ASCII digits padded with FF>``. A wrong PIN
  answers ``63Cx`` (x tries left; ``63C0`` when the last try is used), then ``6983`` once
  blocked. ``VERIFY 00 20 00 01`` with no data answers the status without consuming a try
  (``9000`` verified, ``63Cx``, ``6983``). The right PIN resets the counter. Power-off or reset
  forgets the verified state, not the counter (which lives as long as the emulator process).
- ``MSE SET 00 22 41 B6`` (signature, for PSO CDS) or ``00 22 41 A4`` (authentication, for
  INTERNAL AUTHENTICATE) with the key reference in tag ``84`` (or ``83``). Key ``10`` is the
  signature key and only goes with ``B6``; key ``20`` only with ``A4`` (else ``6A88``).
- ``PSO CDS 00 2A 9E 9A`` and ``INTERNAL AUTHENTICATE 00 88 00 00`` take a SHA-256 DigestInfo and
  answer the PKCS#1 v1.5 signature; ``6982`` without a verified PIN, ``6985`` without MSE SET,
  ``6A80`` when the data is not a SHA-256 DigestInfo.

The card is described by a JSON file (see `CardSpec.load`). The PIN is stored there only as a
salted SHA-256 (`pin_record`), so no file of the test suite holds a PIN.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from bridge.card_identity import Situation, encode_situation

CPS3_AID = bytes.fromhex("E8 28 BD 08 0F 80 25 00 00 01 FF 00 10")
FID_IDENTITY = 0xD001
FID_AUTH_CERT = 0xE020
FID_SIGN_CERT = 0xE010
FID_FIRST_SITUATION = 0xD120
MAX_SITUATIONS = 16
KEY_REF_SIGNATURE = 0x10
KEY_REF_AUTHENTICATION = 0x20
PIN_REFERENCE = 0x01
PIN_MAX_LENGTH = 8
TAG_NATIONAL_ID, TAG_FAMILY_NAME, TAG_GIVEN_NAME, TAG_INFO_PS = 0x80, 0x81, 0x82, 0x83
MSE_SIGNATURE, MSE_AUTHENTICATION = 0xB6, 0xA4
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")

SW_OK = b"\x90\x00"
SW_END_OF_FILE = b"\x62\x82"
SW_WRONG_LENGTH = b"\x67\x00"
SW_SECURITY_NOT_SATISFIED = b"\x69\x82"
SW_BLOCKED = b"\x69\x83"
SW_CONDITIONS_NOT_SATISFIED = b"\x69\x85"
SW_NO_CURRENT_EF = b"\x69\x86"
SW_WRONG_DATA = b"\x6a\x80"
SW_FILE_NOT_FOUND = b"\x6a\x82"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_KEY_NOT_FOUND = b"\x6a\x88"
SW_OFFSET_OUTSIDE = b"\x6b\x00"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"


def _atr() -> bytes:
    historical = b"DMPB-CPSTEST"
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


ATR = _atr()


def pin_record(pin: str) -> dict[str, str]:
    """What a card JSON stores for its PIN: a salt and SHA-256(salt + PIN), never the PIN."""
    salt = secrets.token_bytes(16)
    return {"salt": salt.hex(), "sha256": hashlib.sha256(salt + pin.encode()).hexdigest()}


def _tlv(tag: int, value: bytes) -> bytes:
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    return bytes([tag, 0x82]) + len(value).to_bytes(2, "big") + value


def info_ps(kind: str, profession_code: str, specialty_code: str | None) -> str:
    """CPS_INFO_PS in the layout `parse_info_ps` reads: kind, profession, …, speciality."""
    return f"{kind}{profession_code:<2}  {specialty_code or '0000'}"


@dataclass(frozen=True)
class CardSpec:
    """What a card JSON describes (paths are relative to the JSON file)."""

    national_id: str
    family_name: str
    given_name: str
    kind: str  # CPS, CPE, … (bridge.card_identity.CardKind)
    profession_code: str  # TRE_G15, "" for a staff card
    specialty_code: str | None
    situations: tuple[Situation, ...]
    pin_salt: bytes
    pin_sha256: bytes
    max_tries: int
    auth_key: rsa.RSAPrivateKey
    auth_cert_der: bytes
    sign_key: rsa.RSAPrivateKey
    sign_cert_der: bytes

    @classmethod
    def load(cls, path: Path) -> CardSpec:
        """Read a card JSON::

            {"national_id": "899700366240", "family_name": "…", "given_name": "…",
             "kind": "CPS", "profession_code": "60", "specialty_code": null,
             "situations": [{"index": 1, "structure_id": "…", "structure_name": "…",
                             "sector_code": "SA07"}],
             "pin": {"salt": "<hex>", "sha256": "<hex>"}, "max_tries": 3,
             "authentication": {"key": "auth.key", "cert": "auth.pem"},
             "signature": {"key": "sign.key", "cert": "sign.pem"}}
        """
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        base = path.parent

        def key_and_cert(entry: dict[str, str]) -> tuple[rsa.RSAPrivateKey, bytes]:
            key = serialization.load_pem_private_key((base / entry["key"]).read_bytes(), None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{entry['key']}: RSA key expected")
            cert = x509.load_pem_x509_certificate((base / entry["cert"]).read_bytes())
            return key, cert.public_bytes(serialization.Encoding.DER)

        auth_key, auth_cert = key_and_cert(data["authentication"])
        sign_key, sign_cert = key_and_cert(data["signature"])
        situations = tuple(Situation(**s) for s in data.get("situations", []))
        if len(situations) > MAX_SITUATIONS:
            raise ValueError(f"at most {MAX_SITUATIONS} situations on a card")
        return cls(
            national_id=data["national_id"],
            family_name=data["family_name"],
            given_name=data["given_name"],
            kind=data.get("kind", "CPS"),
            profession_code=data.get("profession_code", ""),
            specialty_code=data.get("specialty_code"),
            situations=situations,
            pin_salt=bytes.fromhex(data["pin"]["salt"]),
            pin_sha256=bytes.fromhex(data["pin"]["sha256"]),
            max_tries=int(data.get("max_tries", 3)),
            auth_key=auth_key,
            auth_cert_der=auth_cert,
            sign_key=sign_key,
            sign_cert_der=sign_cert,
        )


@dataclass(frozen=True)
class _File:
    content: bytes
    private: bool


class CpsLikeCard:
    """The card: `getATR() / powerUp() / powerDown() / reset() / execute(apdu) -> response`.

    The same surface as virtualsmartcard's `SmartcardOS`, so it plugs into our vpcd client or
    into vicc. `execute` never raises: every problem is a status word.
    """

    def __init__(self, spec: CardSpec) -> None:
        self._spec = spec
        identity = (
            _tlv(TAG_NATIONAL_ID, spec.national_id.encode("ascii"))
            + _tlv(TAG_FAMILY_NAME, spec.family_name.encode("utf-8"))
            + _tlv(TAG_GIVEN_NAME, spec.given_name.encode("utf-8"))
            + _tlv(TAG_INFO_PS, info_ps(spec.kind, spec.profession_code,
                                        spec.specialty_code).encode("ascii"))
        )
        self._files: dict[int, _File] = {
            FID_IDENTITY: _File(identity, private=False),
            FID_AUTH_CERT: _File(spec.auth_cert_der, private=False),
            FID_SIGN_CERT: _File(spec.sign_cert_der, private=False),
        }
        for number in range(MAX_SITUATIONS):
            self._files[FID_FIRST_SITUATION + number] = _File(b"", private=True)
        for situation in spec.situations:
            if not 1 <= situation.index <= MAX_SITUATIONS:
                raise ValueError(f"situation index {situation.index} outside 1…16")
            fid = FID_FIRST_SITUATION + situation.index - 1
            self._files[fid] = _File(encode_situation(situation), private=True)
        self._keys = {KEY_REF_SIGNATURE: spec.sign_key, KEY_REF_AUTHENTICATION: spec.auth_key}
        self._tries_left = spec.max_tries
        self._reset_security_state()

    # -- SmartcardOS surface ------------------------------------------------------------------

    def getATR(self) -> bytes:
        return ATR

    def powerUp(self) -> None:
        self._reset_security_state()

    def powerDown(self) -> None:
        self._reset_security_state()

    def reset(self) -> None:
        self._reset_security_state()

    def execute(self, apdu: bytes) -> bytes:
        """The response APDU (data + SW) to a short command APDU."""
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        parsed = _split(apdu[4:])
        if parsed is None:
            return SW_WRONG_LENGTH
        data, le = parsed
        if cla != 0x00:
            return SW_CLA_NOT_SUPPORTED
        handlers = {
            0xA4: self._select,
            0xB0: self._read_binary,
            0x20: self._verify,
            0x22: self._mse_set,
            0x2A: self._pso,
            0x88: self._internal_authenticate,
        }
        handler = handlers.get(ins)
        if handler is None:
            return SW_INS_NOT_SUPPORTED
        return handler(p1, p2, data, le)

    # -- commands -----------------------------------------------------------------------------

    def _reset_security_state(self) -> None:
        self._app_selected = False
        self._current: int | None = None
        self._verified = False
        self._mse: tuple[int, int] | None = None  # (template B6/A4, key reference)

    def _select(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if p1 == 0x04:
            if data != CPS3_AID:
                return SW_FILE_NOT_FOUND
            self._app_selected, self._current = True, None
            return SW_OK
        if p1 != 0x02 or p2 not in (0x04, 0x0C) or len(data) != 2:
            return SW_WRONG_P1P2
        fid = int.from_bytes(data, "big")
        if not self._app_selected or fid not in self._files:
            return SW_FILE_NOT_FOUND
        self._current = fid
        if p2 == 0x0C:
            return SW_OK
        size = len(self._files[fid].content)
        fcp = _tlv(0x80, size.to_bytes(2, "big")) + _tlv(0x82, b"\x01") + _tlv(0x83, data)
        return _tlv(0x62, fcp) + SW_OK

    def _read_binary(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if self._current is None:
            return SW_NO_CURRENT_EF
        file = self._files[self._current]
        if file.private and not self._verified:
            return SW_SECURITY_NOT_SATISFIED
        offset = ((p1 & 0x7F) << 8) | p2
        if offset > len(file.content):
            return SW_OFFSET_OUTSIDE
        wanted = 256 if le is None or le == 0 else le
        chunk = file.content[offset:offset + wanted]
        return chunk + (SW_OK if len(chunk) == wanted else SW_END_OF_FILE)

    def _verify(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if p1 != 0x00 or p2 != PIN_REFERENCE:
            return SW_KEY_NOT_FOUND
        if self._tries_left == 0:
            return SW_BLOCKED
        if not data:
            return SW_OK if self._verified else bytes([0x63, 0xC0 | self._tries_left])
        pin = data.rstrip(b"\xff")
        digest = hashlib.sha256(self._spec.pin_salt + pin).digest()
        if len(data) <= PIN_MAX_LENGTH and hmac.compare_digest(digest, self._spec.pin_sha256):
            self._tries_left = self._spec.max_tries
            self._verified = True
            return SW_OK
        self._tries_left -= 1
        self._verified = False
        return bytes([0x63, 0xC0 | self._tries_left])

    def _mse_set(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if p1 != 0x41 or p2 not in (MSE_SIGNATURE, MSE_AUTHENTICATION):
            return SW_WRONG_P1P2
        reference = None
        pos = 0
        while pos + 2 <= len(data):
            tag, length = data[pos], data[pos + 1]
            value = data[pos + 2:pos + 2 + length]
            if tag in (0x83, 0x84) and len(value) == 1:
                reference = value[0]
            pos += 2 + length
        allowed = KEY_REF_SIGNATURE if p2 == MSE_SIGNATURE else KEY_REF_AUTHENTICATION
        if reference != allowed:
            self._mse = None
            return SW_KEY_NOT_FOUND
        self._mse = (p2, reference)
        return SW_OK

    def _pso(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if (p1, p2) != (0x9E, 0x9A):
            return SW_WRONG_P1P2
        return self._sign(MSE_SIGNATURE, data)

    def _internal_authenticate(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if (p1, p2) != (0x00, 0x00):
            return SW_WRONG_P1P2
        return self._sign(MSE_AUTHENTICATION, data)

    def _sign(self, template: int, digest_info: bytes) -> bytes:
        if not self._verified:
            return SW_SECURITY_NOT_SATISFIED
        if self._mse is None or self._mse[0] != template:
            return SW_CONDITIONS_NOT_SATISFIED
        prefix = SHA256_DIGEST_INFO_PREFIX
        if not digest_info.startswith(prefix) or len(digest_info) != len(prefix) + 32:
            return SW_WRONG_DATA
        key = self._keys[self._mse[1]]
        signature = key.sign(
            digest_info[len(prefix):], padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
        return signature + SW_OK


def _split(body: bytes) -> tuple[bytes, int | None] | None:
    """(data, Le) of the body of a short APDU (cases 1 to 4), None when malformed."""
    if not body:
        return b"", None
    if len(body) == 1:
        return b"", body[0]
    lc = body[0]
    if lc == 0 or len(body) not in (1 + lc, 2 + lc):
        return None
    le = body[1 + lc] if len(body) == 2 + lc else None
    return body[1:1 + lc], le
