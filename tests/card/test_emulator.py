"""The emulated CPS-like card on its own: `execute()` with no pcscd, per its documented layout."""

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bridge.card_identity import parse_situation
from bridge.card_port import sha256_digest_info
from tests.card.conftest import CARD_PIN
from tests.card.emulator import CPS3_AID, CardSpec, CpsLikeCard
from tests.card.pcsc_env import EmulatedCard

SELECT_CPS3 = bytes([0x00, 0xA4, 0x04, 0x0C, len(CPS3_AID)]) + CPS3_AID


def pin_apdu(pin: str) -> bytes:
    return bytes([0x00, 0x20, 0x00, 0x01, 0x08]) + pin.encode().ljust(8, b"\xff")


def select(fid: int) -> bytes:
    return bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big")


@pytest.fixture
def card(cps_card: EmulatedCard) -> CpsLikeCard:
    card = CpsLikeCard(CardSpec.load(cps_card.json_path))
    card.powerUp()
    return card


def test_files_are_reachable_only_once_the_cps3_application_is_selected(card):
    assert card.execute(select(0xD001)) == b"\x6a\x82"
    assert card.execute(SELECT_CPS3) == b"\x90\x00"
    assert card.execute(select(0xD001)) == b"\x90\x00"
    assert card.execute(SELECT_CPS3[:-1] + b"\x11") == b"\x6a\x82"


def test_identity_is_public_and_situations_need_the_pin(card):
    card.execute(SELECT_CPS3)
    card.execute(select(0xD001))
    identity = card.execute(bytes.fromhex("00B0000000"))
    assert identity.endswith(b"\x62\x82")  # shorter than the 256 bytes asked
    assert b"899700366240" in identity and b"CPS60  0000" in identity

    card.execute(select(0xD120))
    assert card.execute(bytes.fromhex("00B0000000")) == b"\x69\x82"
    assert card.execute(pin_apdu(CARD_PIN)) == b"\x90\x00"
    situation = card.execute(bytes.fromhex("00B0000000"))[:-2]
    assert parse_situation(1, situation).structure_id == "499700366240007"


def test_wrong_pins_count_down_to_blocked_and_a_status_query_consumes_no_try(card):
    status = bytes.fromhex("00200001")
    assert card.execute(status) == b"\x63\xc3"
    assert card.execute(pin_apdu("0000")) == b"\x63\xc2"
    assert card.execute(status) == b"\x63\xc2"
    assert card.execute(pin_apdu("0001")) == b"\x63\xc1"
    assert card.execute(pin_apdu("0002")) == b"\x63\xc0"
    assert card.execute(pin_apdu(CARD_PIN)) == b"\x69\x83"
    assert card.execute(status) == b"\x69\x83"


def test_the_right_pin_resets_the_counter_and_power_off_forgets_it(card):
    assert card.execute(pin_apdu("0000")) == b"\x63\xc2"
    assert card.execute(pin_apdu(CARD_PIN)) == b"\x90\x00"
    assert card.execute(bytes.fromhex("00200001")) == b"\x90\x00"
    card.powerDown()
    card.powerUp()
    assert card.execute(bytes.fromhex("00200001")) == b"\x63\xc3"


@pytest.mark.parametrize(
    ("mse", "operation", "certificate"),
    [
        ("002241B603840110", "002A9E9A", "sign_cert"),
        ("002241A403840120", "00880000", "auth_cert"),
    ],
)
def test_each_key_signs_a_digest_info_once_the_pin_is_verified(card, cps_card, mse, operation,
                                                                certificate):
    digest_info = sha256_digest_info(b"VIHF")
    command = bytes.fromhex(operation) + bytes([len(digest_info)]) + digest_info + b"\x00"
    card.execute(SELECT_CPS3)
    assert card.execute(bytes.fromhex(mse)) == b"\x90\x00"
    assert card.execute(command) == b"\x69\x82"
    card.execute(pin_apdu(CARD_PIN))
    response = card.execute(command)
    assert response[-2:] == b"\x90\x00" and len(response) == 258
    public_key = getattr(cps_card, certificate).public_key()
    public_key.verify(response[:-2], b"VIHF", padding.PKCS1v15(), hashes.SHA256())
    other = cps_card.auth_cert if certificate == "sign_cert" else cps_card.sign_cert
    with pytest.raises(InvalidSignature):
        other.public_key().verify(response[:-2], b"VIHF", padding.PKCS1v15(), hashes.SHA256())


def test_a_key_only_serves_its_own_role_and_only_signs_a_sha256_digest_info(card):
    card.execute(SELECT_CPS3)
    card.execute(pin_apdu(CARD_PIN))
    assert card.execute(bytes.fromhex("002241B603840120")) == b"\x6a\x88"
    assert card.execute(bytes.fromhex("002A9E9A0401020304" + "00")) == b"\x69\x85"
    assert card.execute(bytes.fromhex("002241B603840110")) == b"\x90\x00"
    assert card.execute(bytes.fromhex("002A9E9A0401020304" + "00")) == b"\x6a\x80"
