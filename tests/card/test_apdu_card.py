"""A CPS card session over real PC/SC: identity, PIN, signatures, removal (emulated cards)."""

import asyncio
from collections.abc import Iterator

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from bridge.card_identity import CardKind, Situation
from bridge.card_port import (
    CardAbsent,
    CardBlocked,
    CardError,
    CardSession,
    KeyRole,
    NotLoggedIn,
    PinStatus,
    WrongPin,
    sha256_digest_info,
)
from connectors.apdu_card import ApduCardSession, list_readers, open_apdu_session
from tests.card.conftest import CARD_PIN, SECOND_CARD_PIN


@pytest.fixture
def open_session(pcsc) -> Iterator:
    sessions: list[ApduCardSession] = []

    def open_(reader: int = 0) -> ApduCardSession:
        session = open_apdu_session(pcsc.readers[reader])
        sessions.append(session)
        return session

    yield open_
    for session in sessions:
        session.close()


def verify(certificate, signature: bytes, data: bytes) -> None:
    certificate.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_is_a_card_session_and_reads_the_holder_and_certificates_before_login(
        pcsc, open_session, cps_card):
    pcsc.insert(cps_card.json_path)
    session: CardSession = open_session()
    holder = session.holder()
    assert (holder.national_id, holder.family_name, holder.given_name) == (
        "899700366240", "INFIRMIERE", "CLAIRE")
    assert (holder.kind, holder.profession_code, holder.specialty_code) == (
        CardKind.CPS, "60", None)
    assert holder.rpps == "99700366240"
    der = serialization.Encoding.DER
    assert session.certificate(KeyRole.SIGNATURE) == cps_card.sign_cert.public_bytes(der)
    assert session.certificate(KeyRole.AUTHENTICATION) == cps_card.auth_cert.public_bytes(der)
    assert session.reader == pcsc.readers[0]


def test_situations_are_private_then_decoded_after_login(pcsc, open_session, cps_card):
    pcsc.insert(cps_card.json_path)
    session = open_session()
    with pytest.raises(NotLoggedIn) as refused:
        session.situations()
    assert "code PIN" in refused.value.message_fr
    session.login(CARD_PIN)
    assert session.situations() == [
        Situation(1, "499700366240007", "CABINET INFIRMIER DEMO", "SA07"),
        Situation(3, "10B0123456", "CENTRE DE SANTÉ DES LILAS", "SA05"),
    ]


def test_wrong_pins_leave_two_then_one_try_then_block_the_card(pcsc, open_session, cps_card):
    pcsc.insert(cps_card.json_path)
    session = open_session()
    assert session.pin_status() == PinStatus(tries_left=3)
    with pytest.raises(WrongPin) as first:
        session.login("0000")
    assert first.value.tries_left == 2
    assert session.pin_status() == PinStatus(tries_left=2)  # asking consumes nothing
    assert session.pin_status() == PinStatus(tries_left=2)
    with pytest.raises(WrongPin) as second:
        session.login("0001")
    assert second.value.tries_left == 1
    assert "UN seul essai" in second.value.message_fr
    with pytest.raises(CardBlocked):
        session.login("0002")
    assert session.pin_status() == PinStatus(tries_left=0, blocked=True)
    with pytest.raises(CardBlocked) as blocked:
        session.login(CARD_PIN)
    assert "PUK" in blocked.value.message_fr


def test_a_malformed_pin_is_not_presented_to_the_card(pcsc, open_session, cps_card):
    pcsc.insert(cps_card.json_path)
    session = open_session()
    for malformed in ("12", "123456789", "12a4", "١٢٣٤"):
        with pytest.raises(CardError) as refused:
            session.login(malformed)
        assert refused.value.code == "CARD_PIN_FORMAT"
    assert session.pin_status() == PinStatus(tries_left=3)


@pytest.mark.parametrize("role", [KeyRole.SIGNATURE, KeyRole.AUTHENTICATION])
def test_the_right_pin_lets_each_key_sign_and_its_certificate_verifies(
        pcsc, open_session, cps_card, role):
    pcsc.insert(cps_card.json_path)
    session = open_session()
    session.login(CARD_PIN)
    assert session.pin_status().logged_in
    signature = session.sign_digest_info(role, sha256_digest_info(b"<saml2:Assertion/>"))
    own = cps_card.sign_cert if role is KeyRole.SIGNATURE else cps_card.auth_cert
    other = cps_card.auth_cert if role is KeyRole.SIGNATURE else cps_card.sign_cert
    verify(own, signature, b"<saml2:Assertion/>")
    with pytest.raises(InvalidSignature):
        verify(other, signature, b"<saml2:Assertion/>")


def test_signing_before_login_is_refused(pcsc, open_session, cps_card):
    pcsc.insert(cps_card.json_path)
    session = open_session()
    with pytest.raises(NotLoggedIn):
        session.sign_digest_info(KeyRole.SIGNATURE, sha256_digest_info(b"x"))
    assert session.pin_status() == PinStatus(tries_left=3)


def test_a_card_pulled_out_mid_session_is_absent(pcsc, open_session, cps_card):
    handle = pcsc.insert(cps_card.json_path)
    session = open_session()
    session.login(CARD_PIN)
    pcsc.remove(handle)
    with pytest.raises(CardAbsent) as absent:
        session.sign_digest_info(KeyRole.SIGNATURE, sha256_digest_info(b"x"))
    assert "retirée" in absent.value.message_fr
    with pytest.raises(CardAbsent):  # the session is over, even if a card comes back
        session.pin_status()
    pcsc.insert(cps_card.json_path)
    with pytest.raises(CardAbsent):
        session.holder()


def test_opening_an_empty_reader_or_an_unknown_one_says_what_to_do(pcsc):
    with pytest.raises(CardAbsent) as empty:
        open_apdu_session(pcsc.readers[1])
    assert "réinsérez" in empty.value.message_fr
    with pytest.raises(CardAbsent) as unknown:
        open_apdu_session("Lecteur inexistant 00 00")
    assert "branché" in unknown.value.message_fr


def test_a_stopped_pcsc_service_makes_the_card_absent(pcsc, open_session, cps_card):
    pcsc.insert(cps_card.json_path)
    session = open_session()
    assert pcsc.readers[0] in list_readers()
    pcsc.stop_pcscd()
    with pytest.raises(CardAbsent) as absent:
        session.pin_status()
    assert "PC/SC" in absent.value.message_fr
    with pytest.raises(CardAbsent):
        list_readers()


def test_two_cards_in_two_readers_sign_with_their_own_keys(pcsc, open_session, cps_card,
                                                           second_card):
    pcsc.insert(cps_card.json_path, reader=0)
    pcsc.insert(second_card.json_path, reader=1)
    nurse, doctor = open_session(0), open_session(1)
    assert doctor.holder().specialty_code == "SM54"
    nurse.login(CARD_PIN)
    with pytest.raises(WrongPin):
        doctor.login(CARD_PIN)
    doctor.login(SECOND_CARD_PIN)
    digest_info = sha256_digest_info(b"lot")
    verify(cps_card.sign_cert, nurse.sign_digest_info(KeyRole.SIGNATURE, digest_info), b"lot")
    verify(second_card.sign_cert, doctor.sign_digest_info(KeyRole.SIGNATURE, digest_info),
           b"lot")


async def test_concurrent_calls_from_threads_never_mix_their_apdus(pcsc, open_session,
                                                                  cps_card):
    pcsc.insert(cps_card.json_path)
    session = open_session()
    await asyncio.to_thread(session.login, CARD_PIN)
    roles = [KeyRole.SIGNATURE, KeyRole.AUTHENTICATION] * 4
    payloads = [f"document {n}".encode() for n in range(len(roles))]
    signatures = await asyncio.gather(*(
        asyncio.to_thread(session.sign_digest_info, role, sha256_digest_info(payload))
        for role, payload in zip(roles, payloads, strict=True)
    ))
    for role, payload, signature in zip(roles, payloads, signatures, strict=True):
        own = cps_card.sign_cert if role is KeyRole.SIGNATURE else cps_card.auth_cert
        verify(own, signature, payload)
