"""SoftHSM2 tokens shaped like a CPS card seen through the ANS Cryptolib (spec/card-auth.md B3).

A provisioned token holds what the Cryptolib shows of a CPS card:

- two RSA-2048 private keys generated ON the token (sensitive, never extractable),
  `CPS_PRIV_AUT` (CKA_ID …20) and `CPS_PRIV_SIG` (…10), invisible before login;
- their certificates, issued by the project's test authority (`service.test_pki`) for the
  exported PUBLIC keys, labelled "Certificat d'Authentification CPS" / "Certificat de Signature
  CPS" with the same CKA_IDs;
- public data objects `CPS_INFO_PS` (card kind, profession, speciality: see
  `bridge.card_identity.parse_info_ps`) and `CPS_NAME_PS`;
- private data objects `CPS_ACTIVITY_01_PS`… holding `encode_situation(...)`.

How to use it (tests/pkcs11/conftest.py has the fixtures):

    home = softhsm_home(tmp_path_factory.mktemp("softhsm"))   # first call fixes it for the run
    card = provision_token(home, pki_dir, pin="1234", holder=NURSE, situations=[NURSE_PRACTICE])
    session = Pkcs11Module(card.module).open(card.reader)      # connectors.pkcs11_card

A SoftHSM library is initialised once per process and reads its configuration then: the first
`softhsm_home` sets SOFTHSM2_CONF for the whole process (never the system token directory) and
every later call returns the same home, whatever its argument. Tokens therefore share one
token directory and each gets a unique label. They are initialised through the library already
loaded in this process (C_InitToken), because SoftHSM does not see tokens that another process
(softhsm2-util) creates after it started; and no PIN is ever put on a command line.

For a subprocess (e2e tests of the service): give it `card.env()`, and name the reader
`card.reader_in_new_process()` — SoftHSM numbers its slots differently in a fresh process.
`card.remove()` deletes the token, which the module then reports as a removed card.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass, TokenFlag

from bridge.card_identity import Situation, encode_situation
from bridge.card_port import KeyRole
from connectors.pkcs11_card import (
    CERTIFICATE_LABELS,
    Pkcs11CardSession,
    Pkcs11Module,
    module_loaded,
)
from service.test_pki import TestPki, generate_test_pki, issue_card_certificate, pki_layout

SOFTHSM_MODULE = Path(os.environ.get("SOFTHSM2_MODULE", "/usr/lib/softhsm/libsofthsm2.so"))
KEY_LABELS = {KeyRole.AUTHENTICATION: "CPS_PRIV_AUT", KeyRole.SIGNATURE: "CPS_PRIV_SIG"}
CPS_IDS = {KeyRole.AUTHENTICATION: b"\x00\x00\x20", KeyRole.SIGNATURE: b"\x00\x00\x10"}


@dataclass(frozen=True)
class TestHolder:
    """Who the test card belongs to: what its certificates and `CPS_INFO_PS` say."""

    __test__ = False  # not a pytest test class

    national_id: str  # CN of the certificates (PS_IdNat: "8" + RPPS)
    family_name: str
    given_name: str
    info_ps: bytes  # CPS_INFO_PS: kind (3 letters), profession (2), …, speciality (4)


NURSE = TestHolder("810101010101", "INFIRMIERE", "Claire", b"CPS60" + b"0000")
DOCTOR = TestHolder("810202020202", "MEDECIN", "Paul", b"CPS10" + b"SM54")
SECRETARY = TestHolder("300000000042", "SECRETAIRE", "Anne", b"CPE  " + b"0000")

NURSE_PRACTICE = Situation(1, "499700366240007", "CABINET INFIRMIER DEMO", "SA07")
DOCTOR_PRACTICES = (
    Situation(1, "10B0152896", "CENTRE DE SANTE DES LILAS", "SA05"),
    Situation(2, "499700366240007", "CABINET MEDICAL DU PORT", "SA07"),
    Situation(4, "3750300087", "HOPITAL DE JOUR", "SA01"),
)
# PINs of the sample tokens (test tokens only: a real PIN is never written anywhere).
NURSE_PIN = "4682"
DOCTOR_PIN = "51739"


@dataclass(frozen=True)
class SoftHsmHome:
    """The SoftHSM configuration of this test process."""

    root: Path
    conf: Path  # the SOFTHSM2_CONF file
    tokens: Path  # the token store (one sub-directory per token)

    def env(self) -> dict[str, str]:
        """The environment a subprocess needs to see these tokens (no PIN in it)."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}


@dataclass(frozen=True)
class ProvisionedToken:
    """A CPS-like token ready to open with `connectors.pkcs11_card`."""

    home: SoftHsmHome
    module: Path  # the PKCS#11 library (SoftHSM2)
    label: str  # the token label (unique in the run)
    reader: str  # the slot description in THIS process, what `Pkcs11Module.open` takes
    pki: TestPki  # the test authority that issued the certificates
    holder: TestHolder
    situations: tuple[Situation, ...]
    certificate_labels: Mapping[KeyRole, str] = field(default_factory=dict)
    ids: Mapping[KeyRole, bytes] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that opens this token."""
        return self.home.env()

    def open(self) -> Pkcs11CardSession:
        """A session on this token through the production connector (close it after use)."""
        return Pkcs11Module(self.module).open(self.reader)

    def reader_in_new_process(self) -> str:
        """The slot description a freshly started process sees for this token."""
        found = subprocess.run(
            [sys.executable, "-c", _READER_OF_LABEL, str(self.module), self.label],
            env=self.env(), capture_output=True, text=True, timeout=60, check=True,
        )
        reader = found.stdout.strip()
        if not reader:
            raise LookupError(f"token {self.label} not visible in a new process")
        return reader

    def remove(self) -> None:
        """Delete the token: what a card pulled out of its reader looks like to the module."""
        subprocess.run(
            ["softhsm2-util", "--delete-token", "--token", self.label],
            env=self.env(), capture_output=True, timeout=60, check=True,
        )


_READER_OF_LABEL = """
import sys, pkcs11
lib = pkcs11.lib(sys.argv[1])
for slot in lib.get_slots(token_present=True):
    if slot.get_token().label == sys.argv[2]:
        print(slot.slot_description.strip())
        break
"""

_home: SoftHsmHome | None = None
_lock = threading.Lock()


def softhsm_home(root: Path) -> SoftHsmHome:
    """This process's SoftHSM configuration: created under `root` by the first call."""
    global _home  # noqa: PLW0603 - one SoftHSM configuration per process, by construction
    with _lock:
        if _home is not None:
            return _home
        if module_loaded(SOFTHSM_MODULE):
            raise RuntimeError(
                "SoftHSM was loaded before its test configuration was set: call softhsm_home() "
                "before the first Pkcs11Module(SOFTHSM_MODULE)."
            )
        tokens = root / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        conf = root / "softhsm2.conf"
        conf.write_text(
            f"directories.tokendir = {tokens.as_posix()}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n",
            encoding="utf-8",
        )
        os.environ["SOFTHSM2_CONF"] = str(conf)
        _home = SoftHsmHome(root, conf, tokens)
        return _home


def _is_free(slot: pkcs11.Slot) -> bool:
    """An uninitialised slot; a slot whose token another test deleted answers an error."""
    try:
        return not slot.get_token().flags & TokenFlag.TOKEN_INITIALIZED
    except pkcs11.PKCS11Error:
        return False


def _init_token(module: Path, label: str, so_pin: str, pin: str) -> pkcs11.Token:
    """Initialise the free slot of the in-process SoftHSM as `label`, with a user PIN."""
    modules = Pkcs11Module(module)  # loads SoftHSM through the connector's per-process cache
    lib = pkcs11.lib(modules.path)
    free = [slot for slot in lib.get_slots(token_present=True) if _is_free(slot)]
    if not free:
        raise RuntimeError("SoftHSM has no free slot left")
    native = ctypes.CDLL(modules.path)  # the same library, already initialised
    native.C_InitToken.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong,
                                   ctypes.c_char_p]
    native.C_InitToken.restype = ctypes.c_ulong
    so = so_pin.encode()
    result = native.C_InitToken(free[0].slot_id, so, len(so), label.encode().ljust(32))
    if result != 0:
        raise RuntimeError(f"C_InitToken failed: CKR 0x{result:x}")
    token = free[0].get_token()  # by its slot: a deleted token elsewhere cannot be listed
    assert token.label == label, token.label
    with token.open(rw=True, so_pin=so_pin) as session:
        session.init_pin(pin)
    return token


def _generate_key(session: pkcs11.Session, role: KeyRole, cka_id: bytes) -> rsa.RSAPublicKey:
    """An RSA-2048 pair made on the token; the private half stays there, the public is
    returned (and not kept on the token)."""
    public, _private = session.generate_keypair(
        KeyType.RSA, 2048, store=True, id=cka_id, label=KEY_LABELS[role],
        public_template={Attribute.TOKEN: False, Attribute.VERIFY: True},
        private_template={
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
        },
    )
    return rsa.RSAPublicNumbers(
        int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
        int.from_bytes(public[Attribute.MODULUS], "big"),
    ).public_key()


def _store_data(session: pkcs11.Session, label: str, value: bytes, *, private: bool) -> None:
    session.create_object({
        Attribute.CLASS: ObjectClass.DATA,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: private,
        Attribute.LABEL: label,
        Attribute.APPLICATION: "CPS",
        Attribute.VALUE: value,
    })


def provision_token(
    home: SoftHsmHome,
    pki_dir: Path,
    *,
    pin: str,
    holder: TestHolder = NURSE,
    situations: Iterable[Situation] = (NURSE_PRACTICE,),
    empty_activities: Iterable[int] = (),
    label: str | None = None,
    certificate_labels: Mapping[KeyRole, str] = CERTIFICATE_LABELS,
    ids: Mapping[KeyRole, bytes] = CPS_IDS,
    module: Path = SOFTHSM_MODULE,
) -> ProvisionedToken:
    """A new token in `home` that looks like `holder`'s CPS card, with user PIN `pin`.

    `situations` go to `CPS_ACTIVITY_<index>_PS`; `empty_activities` adds unused (zeroed)
    activity objects, as a real card has 16 files. `certificate_labels` and `ids` change what
    the Cryptolib would show (to test the fallbacks). The test authority lives in `pki_dir`
    (created there if missing). RSA key generation makes this take about a second.
    """
    if module_loaded(module) and os.environ.get("SOFTHSM2_CONF") != str(home.conf):
        raise RuntimeError("SoftHSM is loaded with another configuration than this home")
    label = label or f"CPS-TEST-{secrets.token_hex(4)}"
    pki = generate_test_pki(pki_dir)
    situations = tuple(situations)
    with _lock:
        token = _init_token(module, label, secrets.token_hex(8), pin)
        with token.open(rw=True, user_pin=pin) as session:
            for role in (KeyRole.AUTHENTICATION, KeyRole.SIGNATURE):
                public = _generate_key(session, role, ids[role])
                cert = issue_card_certificate(
                    pki_layout(pki_dir), public,
                    national_id=holder.national_id,
                    family_name=holder.family_name,
                    given_name=holder.given_name,
                    authentication=role is KeyRole.AUTHENTICATION,
                )
                session.create_object({
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.LABEL: certificate_labels[role],
                    Attribute.ID: ids[role],
                    Attribute.SUBJECT: cert.subject.public_bytes(),
                    Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
                })
            _store_data(session, "CPS_INFO_PS", holder.info_ps, private=False)
            _store_data(session, "CPS_NAME_PS",
                        f"{holder.family_name} {holder.given_name}".encode(), private=False)
            for situation in situations:
                _store_data(session, f"CPS_ACTIVITY_{situation.index:02d}_PS",
                            encode_situation(situation), private=True)
            for index in empty_activities:
                _store_data(session, f"CPS_ACTIVITY_{index:02d}_PS", bytes(64), private=True)
        reader = token.slot.slot_description.strip()
    return ProvisionedToken(
        home=home, module=module, label=label, reader=reader, pki=pki, holder=holder,
        situations=situations, certificate_labels=dict(certificate_labels), ids=dict(ids),
    )
