"""What the dashboard asks of the card stack and of the alerting, as Protocols.

Both are optional: without a card panel the Carte page says the bridge uses the structure's
certificates; without an alerts panel the home page shows no alert list. Views are plain values,
already in French, with no patient data (a card holder is a professional, not a patient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from service.alerts import OpenAlert


@dataclass(frozen=True)
class SituationView:
    """One "situation d'exercice" of a card, as the user chooses it."""

    index: int  # 1 … 16, as the card numbers it
    label: str  # e.g. "1. Cabinet infirmier Soignante (499700366240007, SA07)"


@dataclass(frozen=True)
class ReaderView:
    """One card reader and what it holds."""

    name: str  # PC/SC reader name; also what `login` is given back
    card_present: bool
    holder: str | None = None  # holder's display name, e.g. "Hélène SOIGNANTE"
    kind: str | None = None  # CPS, CPF, CPE, CDE
    logged_in: bool = False
    situations: tuple[SituationView, ...] = ()
    chosen_situation: int | None = None  # index of the situation documents are sent from
    pin_tries_left: int | None = None  # None: unknown
    blocked: bool = False  # too many wrong PINs: unblock with the PUK
    warning: str | None = None  # French, e.g. "Carte de personnel : ne peut pas alimenter le DMP"


class CardPanel(Protocol):
    """The CPS cards the bridge can use (direct mode)."""

    def readers(self) -> list[ReaderView]:
        """Every reader with its card (quick: called on each page view)."""
        ...

    async def login(self, reader: str, pin: str, situation: int | None) -> str | None:
        """Present `pin` to the card in `reader` once (never retried, never kept) and use
        `situation` (None: the only one, or the configured one); a French error message, or
        None when the card is logged in."""
        ...


class AlertsPanel(Protocol):
    """The alerts that are open now (raised and not yet ended): `service.alerts.AlertEngine`."""

    def open_alerts(self) -> list[OpenAlert]: ...
