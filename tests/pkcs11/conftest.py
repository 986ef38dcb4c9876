"""Fixtures for the PKCS#11 side of the CPS card: SoftHSM2 tokens shaped like CPS cards.

Session-scoped tokens are shared by tests that leave them as they found them (logged out);
tests that wrong the PIN, delete the token or need odd labels provision their own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from connectors.pkcs11_card import Pkcs11CardSession
from tests.pkcs11.softhsm import (
    DOCTOR,
    DOCTOR_PIN,
    DOCTOR_PRACTICES,
    NURSE,
    NURSE_PIN,
    NURSE_PRACTICE,
    SECRETARY,
    SOFTHSM_MODULE,
    ProvisionedToken,
    SoftHsmHome,
    provision_token,
    softhsm_home,
)

if not SOFTHSM_MODULE.exists() or shutil.which("softhsm2-util") is None:
    # scripts/bootstrap.sh installs it: its absence is a broken setup, not a reason to skip.
    pytest.fail("SoftHSM2 is not installed (apt-get install softhsm2)", pytrace=False)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmHome:
    """The run's SoftHSM configuration (set before the library is first loaded)."""
    return softhsm_home(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="session")
def nurse_card(softhsm: SoftHsmHome, pki_dir: Path) -> ProvisionedToken:
    """A nurse's CPS card with one situation d'exercice."""
    return provision_token(softhsm, pki_dir, pin=NURSE_PIN, holder=NURSE,
                           situations=[NURSE_PRACTICE])


@pytest.fixture(scope="session")
def doctor_card(softhsm: SoftHsmHome, pki_dir: Path) -> ProvisionedToken:
    """A GP's CPS card with three situations and unused activity files between them."""
    return provision_token(softhsm, pki_dir, pin=DOCTOR_PIN, holder=DOCTOR,
                           situations=DOCTOR_PRACTICES, empty_activities=[3, 5, 16])


@pytest.fixture(scope="session")
def secretary_card(softhsm: SoftHsmHome, pki_dir: Path) -> ProvisionedToken:
    """A staff card (CPE): readable, but it may not feed the DMP."""
    return provision_token(softhsm, pki_dir, pin=NURSE_PIN, holder=SECRETARY, situations=[])


@pytest.fixture
def own_card(softhsm: SoftHsmHome, pki_dir: Path) -> ProvisionedToken:
    """A nurse's card for this test alone (wrong PINs, removal)."""
    return provision_token(softhsm, pki_dir, pin=NURSE_PIN)


@pytest.fixture
def nurse_session(nurse_card: ProvisionedToken) -> Iterator[Pkcs11CardSession]:
    """A session on the nurse's card, closed (logged out) after the test."""
    with closing(nurse_card.open()) as session:
        yield session
