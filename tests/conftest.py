"""Shared pytest fixtures for the dmp-bridge test suite."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

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


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Give the root logger and structlog back as they were, closing what the test opened."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)
