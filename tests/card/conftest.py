"""Fixtures of the card tests: a private pcscd with two vpcd readers, and test CPS cards.

Other test packages reuse them by importing from `tests.card.pcsc_env` (`shared_environment`,
`make_test_card`) in their own conftest: one pcscd serves the whole pytest process.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.card.pcsc_env import EmulatedCard, PcscEnvironment, make_test_card, shared_environment

CARD_PIN = "4711"  # the PIN of the TEST cards below
SECOND_CARD_PIN = "2580"


@pytest.fixture(scope="session")
def pcsc_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscEnvironment]:
    """pcscd + vpcd in their own namespaces, for the whole session (fails, never skips)."""
    with shared_environment(tmp_path_factory.mktemp("pcsc")) as environment:
        yield environment


@pytest.fixture
def pcsc(pcsc_session: PcscEnvironment) -> Iterator[PcscEnvironment]:
    """The PC/SC stack; after the test its readers are empty and pcscd runs again."""
    yield pcsc_session
    pcsc_session.remove_all()
    if pcsc_session.pcscd_pid is None:
        pcsc_session.restart_pcscd()


@pytest.fixture
def make_card(tmp_path: Path, pki_dir: Path) -> Callable[..., EmulatedCard]:
    """`make_card(pin=…, national_id=…, …)`: a test card under tmp_path (see make_test_card)."""

    def make(**overrides: Any) -> EmulatedCard:
        return make_test_card(tmp_path, pki_dir=pki_dir, **overrides)

    return make


@pytest.fixture(scope="session")
def cps_card(tmp_path_factory: pytest.TempPathFactory, pki_dir: Path) -> EmulatedCard:
    """A nurse's CPS with two situations; each insertion is a fresh card (3 PIN tries)."""
    from bridge.card_identity import Situation

    return make_test_card(
        tmp_path_factory.mktemp("cps"), pki_dir=pki_dir, pin=CARD_PIN,
        situations=(
            Situation(1, "499700366240007", "CABINET INFIRMIER DEMO", "SA07"),
            Situation(3, "10B0123456", "CENTRE DE SANTÉ DES LILAS", "SA05"),
        ),
    )


@pytest.fixture(scope="session")
def second_card(tmp_path_factory: pytest.TempPathFactory, pki_dir: Path) -> EmulatedCard:
    """A GP's CPS (another holder, other keys)."""
    return make_test_card(
        tmp_path_factory.mktemp("cps2"), pki_dir=pki_dir, pin=SECOND_CARD_PIN,
        national_id="810001234567", family_name="MEDECIN", given_name="PAUL",
        profession_code="10", specialty_code="SM54",
    )
