"""Shared pytest fixtures for the dmp-bridge test suite."""

from pathlib import Path

import pytest

from connectors.software_credentials import SoftwareCredentials
from service.test_pki import pki_layout
from tests.factories import make_software_credentials


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test authority and its certificates, made once for the whole run (RSA keys are slow)."""
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="session")
def credentials(pki_dir: Path) -> SoftwareCredentials:
    """Establishment credentials (ORG AUTH_CLI + ORG SIGN) issued by the test authority."""
    return make_software_credentials(pki_dir)


@pytest.fixture(scope="session")
def sign_cert_pem(pki_dir: Path, credentials: SoftwareCredentials) -> str:
    """The ORG SIGN certificate, PEM, as a verifier is given it."""
    return pki_layout(pki_dir).org_sign.cert.read_text("ascii")
