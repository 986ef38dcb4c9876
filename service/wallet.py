"""The credentials the bridge can send with right now, each with its own TLS connection.

Establishment certificates: one entry for the whole structure, always open. CPS cards: one
entry per logged-in card (two cards in two readers: two entries), added at login and removed
when the card is pulled out. A job is sent only by the entry whose credentials may send for its
author (`Credentials.may_send_as`): the card of its author, or its structure's certificates.
The dispatcher asks the wallet for each lot; when the wallet changes, the jobs that waited for
credentials are tried again at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.credentials_port import Credentials
from bridge.domain import Author
from bridge.vihf import Software
from connectors.dmp_client import DmpClient
from connectors.dmp_transactions import DmpTransactions


@dataclass(frozen=True)
class Opened:
    """One set of credentials with the DMP connection that authenticates with them."""

    name: str  # "etablissement", or the reader of a card
    credentials: Credentials
    client: DmpClient
    transactions: DmpTransactions


class Wallet:
    """Open credentials by name; the first that may send for an author is used."""

    def __init__(self, *, source_id: str, software: Software) -> None:
        self._source_id = source_id
        self._software = software
        self._opened: dict[str, Opened] = {}
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    def single(cls, client: DmpClient, credentials: Credentials, *, source_id: str,
               software: Software, name: str = "etablissement") -> Wallet:
        """A wallet that always holds the same credentials (establishment mode)."""
        wallet = cls(source_id=source_id, software=software)
        wallet.put(name, client, credentials)
        return wallet

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever credentials are opened or closed."""
        self._listeners.append(listener)

    def put(self, name: str, client: DmpClient, credentials: Credentials) -> Opened:
        """Open (or replace) the credentials called `name`."""
        opened = Opened(name, credentials, client, DmpTransactions(
            client, credentials, software=self._software, source_id=self._source_id))
        self._opened[name] = opened
        self._changed()
        return opened

    def remove(self, name: str) -> Opened | None:
        """Close the credentials called `name` (a card was removed); what was removed."""
        opened = self._opened.pop(name, None)
        if opened is not None:
            self._changed()
        return opened

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def for_author(self, author: Author) -> Opened | None:
        """The open credentials allowed to send documents written by `author`, if any."""
        for opened in self._opened.values():
            if opened.credentials.may_send_as(author):
                return opened
        return None

    def names(self) -> list[str]:
        return list(self._opened)

    def clients(self) -> list[DmpClient]:
        return [opened.client for opened in self._opened.values()]
