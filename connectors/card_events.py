"""What the card watchers report: readers and cards coming and going, the service up or down.

Shared by the PC/SC monitor (`connectors.pcsc_monitor`, needs pyscard) and the PKCS#11 slot
watcher (`connectors.pkcs11_slots`), so the service consumes one kind of event whichever
watches the cards.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PcscEventKind(StrEnum):
    """What changed in the PC/SC world."""

    SERVICE_UP = "service_up"  # the PC/SC service answers
    SERVICE_DOWN = "service_down"  # the PC/SC service does not answer
    READER_ADDED = "reader_added"  # a (watched) reader appeared
    READER_REMOVED = "reader_removed"  # a reader disappeared
    CARD_INSERTED = "card_inserted"  # a card is in a reader (also one present at start)
    CARD_REMOVED = "card_removed"  # the card left the reader


@dataclass(frozen=True)
class PcscEvent:
    """One change; `reader` for reader and card events, `atr` for CARD_INSERTED."""

    kind: PcscEventKind
    reader: str | None = None
    atr: bytes | None = None
