"""Small real implementations of the dashboard's panels for the tests: a card in a reader that
checks its PIN like a CPS does (tries counted, blocked after three wrong ones), and a fixed list
of alerts."""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass, field

from service.alerts import OpenAlert, Severity
from service.dashboard.panels import ReaderView, SituationView

CARD_PIN = "739164"  # the test card's PIN; searched for in every page, log and header
READER = "Lecteur de test 00"
SITUATIONS = (
    SituationView(1, "1. Cabinet infirmier Soignante (499700366240007, SA07)"),
    SituationView(2, "2. Centre de soins du Port (499700366240008, SA05)"),
)
MAX_TRIES = 3


@dataclass
class EmulatedCard:
    """One reader holding one CPS (or none)."""

    present: bool = True
    tries_left: int = MAX_TRIES
    logged_in: bool = False
    chosen: int | None = None
    logins: int = 0  # how many times a PIN was presented

    def readers(self) -> list[ReaderView]:
        if not self.present:
            return [ReaderView(READER, card_present=False)]
        return [ReaderView(READER, card_present=True, holder="Hélène SOIGNANTE", kind="CPS",
                           logged_in=self.logged_in, situations=SITUATIONS,
                           chosen_situation=self.chosen, pin_tries_left=self.tries_left,
                           blocked=self.tries_left == 0)]

    async def login(self, reader: str, pin: str, situation: int | None) -> str | None:
        self.logins += 1
        if reader != READER or not self.present:
            return "Aucune carte dans ce lecteur : insérez la carte puis rechargez la page."
        if self.tries_left == 0:
            return "Carte bloquée : débloquez-la avec son code PUK."
        if situation not in {s.index for s in SITUATIONS}:
            return "Choisissez la situation d'exercice d'où partent les documents."
        if not hmac.compare_digest(pin.encode(), CARD_PIN.encode()):
            self.tries_left -= 1
            return (f"Code PIN incorrect. Il reste {self.tries_left} essai(s) avant le blocage "
                    "de la carte.")
        self.tries_left, self.logged_in, self.chosen = MAX_TRIES, True, situation
        return None


@dataclass
class FixedAlerts:
    """Alerts that stay open until the test changes the list."""

    alerts: list[OpenAlert] = field(default_factory=list)

    def open_alerts(self) -> list[OpenAlert]:
        return list(self.alerts)


def disk_alert() -> OpenAlert:
    return OpenAlert("disque", Severity.CRITICAL,
                     "Espace disque faible sur le dossier des données (120 Mo libres).",
                     dt.datetime(2026, 11, 20, 8, 15, tzinfo=dt.UTC))
