"""A CPS card through PKCS#11 (connectors/pkcs11_card.py), on SoftHSM2 tokens shaped like the
Cryptolib's view of a card: what is visible before and after the PIN, how a wrong PIN, a
removed card and a closed session surface, and that the card signs like CKM_SHA256_RSA_PKCS.

What is checked on the token is read with python-pkcs11 directly, not through the connector.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, Mechanism, ObjectClass, TokenFlag

from bridge.card_identity import CardHolder, CardKind, CardRefused
from bridge.card_port import (
    CardAbsent,
    CardError,
    KeyRole,
    NotLoggedIn,
    PinStatus,
    WrongPin,
    sha256_digest_info,
)
from connectors.pkcs11_card import (
    CardModuleUnusable,
    Pkcs11CardSession,
    Pkcs11Module,
    pin_state_from_flags,
)
from tests.pkcs11.softhsm import (
    DOCTOR_PIN,
    DOCTOR_PRACTICES,
    NURSE,
    NURSE_PIN,
    NURSE_PRACTICE,
    ProvisionedToken,
    SoftHsmHome,
    provision_token,
)

ROOT = Path(__file__).resolve().parents[2]


def raw_token(card: ProvisionedToken) -> pkcs11.Token:
    return pkcs11.lib(str(card.module.resolve())).get_token(token_label=card.label)


def labels_of(session: pkcs11.Session, object_class: ObjectClass) -> list[str]:
    return sorted(obj[Attribute.LABEL] for obj in session.get_objects(
        {Attribute.CLASS: object_class}))


def public_key_of(der: bytes) -> rsa.RSAPublicKey:
    key = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


# -- before the PIN -----------------------------------------------------------------------------

def test_before_login_only_certificates_and_public_data_are_visible(
        nurse_card: ProvisionedToken) -> None:
    with raw_token(nurse_card).open() as raw:
        assert labels_of(raw, ObjectClass.CERTIFICATE) == [
            "Certificat d'Authentification CPS", "Certificat de Signature CPS"]
        assert labels_of(raw, ObjectClass.DATA) == ["CPS_INFO_PS", "CPS_NAME_PS"]
        assert labels_of(raw, ObjectClass.PRIVATE_KEY) == []
    with raw_token(nurse_card).open(user_pin=NURSE_PIN) as raw:
        assert labels_of(raw, ObjectClass.PRIVATE_KEY) == ["CPS_PRIV_AUT", "CPS_PRIV_SIG"]
        assert "CPS_ACTIVITY_01_PS" in labels_of(raw, ObjectClass.DATA)


def test_the_holder_is_read_before_login_from_the_certificate_and_cps_info_ps(
        nurse_session: Pkcs11CardSession) -> None:
    assert nurse_session.holder() == CardHolder(
        national_id=NURSE.national_id, family_name=NURSE.family_name,
        given_name=NURSE.given_name, kind=CardKind.CPS, profession_code="60",
        specialty_code=None)
    assert nurse_session.holder().rpps == "10101010101"
    nurse_session.holder().check_may_feed()
    assert nurse_session.pin_status() == PinStatus(tries_left=3, blocked=False, logged_in=False)


def test_both_certificates_are_read_before_login(
        nurse_card: ProvisionedToken, nurse_session: Pkcs11CardSession) -> None:
    signature = x509.load_der_x509_certificate(nurse_session.certificate(KeyRole.SIGNATURE))
    authentication = x509.load_der_x509_certificate(
        nurse_session.certificate(KeyRole.AUTHENTICATION))
    assert signature.extensions.get_extension_for_class(x509.KeyUsage).value.content_commitment
    assert not authentication.extensions.get_extension_for_class(
        x509.KeyUsage).value.content_commitment
    ca = x509.load_pem_x509_certificate(nurse_card.pki.ca_cert.read_bytes())
    for cert in (signature, authentication):
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
            NURSE.national_id
    assert nurse_session.reader == nurse_card.reader


def test_private_operations_before_login_ask_for_the_pin(
        nurse_session: Pkcs11CardSession) -> None:
    with pytest.raises(NotLoggedIn, match="code PIN"):
        nurse_session.situations()
    with pytest.raises(NotLoggedIn):
        nurse_session.sign_digest_info(KeyRole.SIGNATURE, sha256_digest_info(b"vihf"))


# -- the PIN ------------------------------------------------------------------------------------

def test_a_wrong_pin_is_reported_with_the_tries_left_and_never_retried(
        own_card: ProvisionedToken) -> None:
    with closing(own_card.open()) as session:
        with pytest.raises(WrongPin) as refused:
            session.login("0000")
        # SoftHSM only raises CKF_USER_PIN_COUNT_LOW: on a 3-try CPS that means 2 tries left.
        assert refused.value.tries_left == 2
        assert "Il reste 2 essais" in refused.value.message_fr
        assert raw_token(own_card).flags & TokenFlag.USER_PIN_COUNT_LOW
        assert session.pin_status() == PinStatus(tries_left=2, blocked=False, logged_in=False)
        with raw_token(own_card).open() as raw:  # the process is still logged out
            assert labels_of(raw, ObjectClass.PRIVATE_KEY) == []
        with pytest.raises(NotLoggedIn):
            session.situations()

        session.login(NURSE_PIN)
        assert session.pin_status() == PinStatus(tries_left=3, blocked=False, logged_in=True)
        assert session.situations() == [NURSE_PRACTICE]


def test_a_second_login_does_not_type_the_pin_again(own_card: ProvisionedToken) -> None:
    with closing(own_card.open()) as session:
        session.login(NURSE_PIN)
        session.login("0000")  # already logged in: the card is not asked again
        assert session.pin_status() == PinStatus(tries_left=3, blocked=False, logged_in=True)
        assert not raw_token(own_card).flags & TokenFlag.USER_PIN_COUNT_LOW


@pytest.mark.parametrize(("flags", "tries", "expected"), [
    (TokenFlag(0), 3, (3, False)),
    (TokenFlag.USER_PIN_COUNT_LOW, 3, (2, False)),
    (TokenFlag.USER_PIN_COUNT_LOW | TokenFlag.USER_PIN_FINAL_TRY, 3, (1, False)),
    (TokenFlag.USER_PIN_FINAL_TRY, None, (1, False)),
    (TokenFlag.USER_PIN_LOCKED | TokenFlag.USER_PIN_COUNT_LOW, 3, (0, True)),
    (TokenFlag.USER_PIN_COUNT_LOW, 5, (None, False)),
    (TokenFlag(0), None, (None, False)),
])
def test_token_flags_give_the_tries_left_as_pkcs11_defines_them(
        flags: TokenFlag, tries: int | None, expected: tuple[int | None, bool]) -> None:
    assert pin_state_from_flags(flags, tries) == expected


def test_logging_out_on_close_locks_the_private_objects_again(
        own_card: ProvisionedToken) -> None:
    session = own_card.open()
    session.login(NURSE_PIN)
    with raw_token(own_card).open() as raw:
        assert labels_of(raw, ObjectClass.PRIVATE_KEY) == ["CPS_PRIV_AUT", "CPS_PRIV_SIG"]
        session.close()
        session.close()  # idempotent
        assert labels_of(raw, ObjectClass.PRIVATE_KEY) == []


def test_two_sessions_on_one_card_share_one_login(own_card: ProvisionedToken) -> None:
    first, second = own_card.open(), own_card.open()
    try:
        first.login(NURSE_PIN)
        second.login(NURSE_PIN)  # the module answers "already logged in": accepted as such
        assert second.pin_status().logged_in
        assert second.situations() == [NURSE_PRACTICE]
        first.close()  # C_Logout: the card is locked for the whole process again
        with pytest.raises(NotLoggedIn):
            second.sign_digest_info(KeyRole.SIGNATURE, sha256_digest_info(b"x"))
        assert not second.pin_status().logged_in
    finally:
        first.close()
        second.close()


# -- situations ---------------------------------------------------------------------------------

def test_the_right_pin_gives_the_only_situation(nurse_session: Pkcs11CardSession) -> None:
    nurse_session.login(NURSE_PIN)
    assert nurse_session.situations() == [NURSE_PRACTICE]


def test_several_situations_are_decoded_in_card_order_and_empty_files_skipped(
        doctor_card: ProvisionedToken) -> None:
    with closing(doctor_card.open()) as session:
        holder = session.holder()
        assert (holder.kind, holder.profession_code, holder.specialty_code) == (
            CardKind.CPS, "10", "SM54")
        session.login(DOCTOR_PIN)
        assert session.situations() == list(DOCTOR_PRACTICES)


# -- signatures ---------------------------------------------------------------------------------

@pytest.mark.parametrize("role", list(KeyRole))
def test_rsa_pkcs_over_a_digest_info_is_the_sha256_rsa_pkcs_signature(
        nurse_card: ProvisionedToken, nurse_session: Pkcs11CardSession, role: KeyRole) -> None:
    data = b"<ds:SignedInfo>canonical bytes</ds:SignedInfo>"
    nurse_session.login(NURSE_PIN)
    signature = nurse_session.sign_digest_info(role, sha256_digest_info(data))

    public_key_of(nurse_session.certificate(role)).verify(
        signature, data, padding.PKCS1v15(), hashes.SHA256())
    with raw_token(nurse_card).open() as raw:  # shares the process's login
        key = raw.get_key(object_class=ObjectClass.PRIVATE_KEY,
                          id=nurse_card.ids[role])
        assert key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS) == signature
    other = KeyRole.AUTHENTICATION if role is KeyRole.SIGNATURE else KeyRole.SIGNATURE
    with pytest.raises(InvalidSignature):
        public_key_of(nurse_session.certificate(other)).verify(
            signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_certificates_pair_with_keys_by_cka_id_and_by_key_usage_when_labels_differ(
        softhsm: SoftHsmHome, pki_dir: Path) -> None:
    odd = provision_token(
        softhsm, pki_dir, pin=NURSE_PIN,
        certificate_labels={KeyRole.AUTHENTICATION: "CPS cert 1",
                            KeyRole.SIGNATURE: "CPS cert 2"},
        ids={KeyRole.AUTHENTICATION: b"\x01\x77", KeyRole.SIGNATURE: b"\x02\x31"})
    with closing(odd.open()) as session:
        signature_cert = x509.load_der_x509_certificate(session.certificate(KeyRole.SIGNATURE))
        assert signature_cert.extensions.get_extension_for_class(
            x509.KeyUsage).value.content_commitment
        assert session.holder().national_id == NURSE.national_id
        session.login(NURSE_PIN)
        for role in KeyRole:
            signed = session.sign_digest_info(role, sha256_digest_info(b"pairing"))
            public_key_of(session.certificate(role)).verify(
                signed, b"pairing", padding.PKCS1v15(), hashes.SHA256())


async def test_threads_sign_through_one_session_one_at_a_time(
        nurse_session: Pkcs11CardSession) -> None:
    nurse_session.login(NURSE_PIN)
    messages = [f"assertion {n}".encode() for n in range(8)]
    signatures = await asyncio.gather(*(
        asyncio.to_thread(nurse_session.sign_digest_info, KeyRole.SIGNATURE,
                          sha256_digest_info(message)) for message in messages))
    public = public_key_of(nurse_session.certificate(KeyRole.SIGNATURE))
    for message, signature in zip(messages, signatures, strict=True):
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def test_the_private_keys_never_leave_the_token(nurse_card: ProvisionedToken) -> None:
    with raw_token(nurse_card).open(user_pin=NURSE_PIN) as raw:
        keys = list(raw.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        assert len(keys) == 2
        for key in keys:
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.NEVER_EXTRACTABLE] is True
            assert key[Attribute.LOCAL] is True  # generated on the token
            with pytest.raises(pkcs11.AttributeSensitive):
                key[Attribute.PRIVATE_EXPONENT]


# -- the card's kind ----------------------------------------------------------------------------

def test_a_staff_card_is_decoded_as_cpe_and_may_not_feed(
        secretary_card: ProvisionedToken) -> None:
    with closing(secretary_card.open()) as session:
        holder = session.holder()
        assert (holder.kind, holder.profession_code, holder.specialty_code) == (
            CardKind.CPE, "", None)
        with pytest.raises(CardRefused, match="personnel d'établissement"):
            holder.check_may_feed()
        session.login(NURSE_PIN)
        assert session.situations() == []


# -- removal, closing, module and readers ------------------------------------------------------

def test_a_removed_card_is_reported_absent_and_closing_still_works(
        own_card: ProvisionedToken) -> None:
    session = own_card.open()
    session.login(NURSE_PIN)
    assert session.present()
    own_card.remove()

    assert not session.present()
    with pytest.raises(CardAbsent, match="Réinsérez la carte") as absent:
        session.sign_digest_info(KeyRole.SIGNATURE, sha256_digest_info(b"x"))
    assert own_card.reader in absent.value.message_fr
    with pytest.raises(CardAbsent):
        session.pin_status()
    with pytest.raises(CardAbsent):
        session.situations()
    with pytest.raises(CardAbsent):
        session.login(NURSE_PIN)
    session.close()
    session.close()
    assert own_card.reader not in Pkcs11Module(own_card.module).readers()


def test_a_closed_session_is_reported_absent(nurse_card: ProvisionedToken) -> None:
    session = nurse_card.open()
    session.close()
    for call in (lambda: session.certificate(KeyRole.SIGNATURE), session.holder,
                 session.pin_status, lambda: session.login(NURSE_PIN), session.situations,
                 lambda: session.sign_digest_info(KeyRole.SIGNATURE, b"x")):
        with pytest.raises(CardAbsent, match="fermée"):
            call()
    assert not session.present()


def test_the_reader_must_hold_a_card_and_be_named_when_several_do(
        nurse_card: ProvisionedToken, doctor_card: ProvisionedToken) -> None:
    module = Pkcs11Module(nurse_card.module)
    readers = module.readers()
    assert {nurse_card.reader, doctor_card.reader} <= set(readers)
    with pytest.raises(CardAbsent, match="Aucune carte dans le lecteur « Lecteur CPS »") as err:
        module.open("Lecteur CPS")
    assert nurse_card.reader in err.value.message_fr
    with pytest.raises(CardError, match="Plusieurs lecteurs") as several:
        module.open()
    assert several.value.code == "CARD_READER_NEEDED"


def test_a_missing_module_says_to_install_the_cryptolib(tmp_path: Path) -> None:
    with pytest.raises(CardModuleUnusable, match="Installez la Cryptolib CPS"):
        Pkcs11Module(tmp_path / "libcps3_pkcs11_lux.so")


def test_a_new_process_opens_the_token_with_the_given_environment(
        nurse_card: ProvisionedToken) -> None:
    reader = nurse_card.reader_in_new_process()
    script = (
        "import sys\n"
        "from connectors.pkcs11_card import Pkcs11Module\n"
        "session = Pkcs11Module(sys.argv[1]).open(sys.argv[2])\n"
        "print('holder', session.holder().national_id)\n"
        "session.close()\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script, str(nurse_card.module), reader],
        env=nurse_card.env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=True)
    assert f"holder {NURSE.national_id}" in shown.stdout.splitlines()

