"""The production-shaped card path, end to end: `dmp-bridge run` in card mode with
`carte.acces = "pkcs11"`, the PKCS#11 module being SoftHSM2 holding a CPS-like token (the
Cryptolib CPS in production), the PIN typed through `dmp-bridge card login`, and the embedded DMP
simulator over mutual TLS with the token's authentication key.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.jobs import JobState
from service.config import load_config
from tests.e2e.conftest import Installation, wait_for
from tests.e2e.test_card_channel import (
    CardBridge,
    card_status,
    run_card_bridge,
    simulator_entries,
)
from tests.factories import make_sidecar_dict
from tests.pkcs11.softhsm import (
    NURSE,
    NURSE_PIN,
    NURSE_PRACTICE,
    SOFTHSM_MODULE,
    ProvisionedToken,
    SoftHsmHome,
    provision_token,
    softhsm_home,
)


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmHome:
    return softhsm_home(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def token(softhsm: SoftHsmHome, installation: Installation) -> ProvisionedToken:
    """A nurse's CPS-like token, its certificates issued by the installation's test PKI."""
    return provision_token(softhsm, installation.config_path.parent / "pki", pin=NURSE_PIN,
                           holder=NURSE, situations=(NURSE_PRACTICE,))


@pytest.fixture
def pkcs11_bridge(installation: Installation, token: ProvisionedToken,
                  tmp_path: Path) -> Iterator[CardBridge]:
    text = installation.config_path.read_text(encoding="utf-8")
    text = (text.replace('mode = "etablissement"', 'mode = "carte"')
            .replace('# module = "/usr/lib/libcps3_pkcs11_lux.so"',
                     f'module = "{SOFTHSM_MODULE}"'))
    installation.config_path.write_text(text, encoding="utf-8")
    card_installation = Installation(installation.config_path,
                                     load_config(installation.config_path))
    yield from run_card_bridge(card_installation, {**os.environ, **token.env()}, tmp_path)


def test_a_document_goes_through_the_token_keys(pkcs11_bridge: CardBridge,
                                                token: ProvisionedToken) -> None:
    installation = pkcs11_bridge.installation
    reader = token.reader_in_new_process()
    wait_for(lambda: reader in card_status(pkcs11_bridge), timeout=20,
             what="the token to be seen as a card")

    installation.drop("jeton", make_sidecar_dict())  # its author is the token's holder
    wait_for(lambda: pkcs11_bridge.state("jeton") is JobState.DEFERRED, timeout=30,
             what="the document to wait for the card")

    wrong = pkcs11_bridge.login("0000", "--lecteur", reader)
    assert wrong.returncode == 1 and "Code PIN incorrect" in wrong.stderr
    right = pkcs11_bridge.login(NURSE_PIN, "--lecteur", reader)
    assert right.returncode == 0, right.stderr
    wait_for(lambda: pkcs11_bridge.state("jeton") is JobState.DONE, timeout=30,
             what="the document to reach the DMP with the token's keys")

    documents = [e for e in simulator_entries(installation) if not e["is_signature"]]
    assert [e["author_id"] for e in documents] == [NURSE.national_id]
    assert f"CN={NURSE.national_id}" in documents[0]["tls_dn"]
    with sqlite3.connect(installation.config.simulator_db_path) as db:
        accepted = db.execute("SELECT COUNT(*) FROM requests WHERE service = 'iti41' "
                              "AND outcome = 'succes'").fetchone()[0]
    assert accepted == 1
