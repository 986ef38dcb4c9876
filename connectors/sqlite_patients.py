"""The patient registry on SQLite: opposition to feeding and consultation consent, per INS.

Fed from sidecars and from HL7 PAM-FR ADT messages (segment ZFA, `bridge.hl7v2.adt`). It lives
in the queue's file, in its own table, so one backup holds everything; it has its own connection
because it is read and written at intake, while the dispatcher works on the queue.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Self

from bridge.identity_gate import PatientRecord
from connectors.sqlite_store import WAL_AUTOCHECKPOINT_PAGES

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    ins TEXT PRIMARY KEY,
    feeding_opposition INTEGER NOT NULL DEFAULT 0,
    opposition_at TEXT,
    consultation_consent_at TEXT,
    updated_at TEXT NOT NULL
)
"""


class SqlitePatientRegistry:
    """What each patient chose about their DMP, as the practice recorded it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                     timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        # The queue's file: checkpoints are the queue's business (its background checkpointer),
        # not an inline cost of recording a patient's choice on the intake path.
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, ins: str) -> PatientRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT ins, feeding_opposition, opposition_at, consultation_consent_at "
                "FROM patients WHERE ins = ?", (ins,)).fetchone()
        if row is None:
            return None
        return PatientRecord(
            ins=row[0], feeding_opposition=bool(row[1]),
            opposition_at=dt.datetime.fromisoformat(row[2]) if row[2] else None,
            consultation_consent_at=dt.date.fromisoformat(row[3]) if row[3] else None,
        )

    def record(self, ins: str, *, now: dt.datetime, feeding_opposition: bool | None = None,
               consultation_consent_at: dt.date | None = None,
               opposition_at: dt.datetime | None = None,
               consent_withdrawn: bool = False) -> PatientRecord:
        """Update what is known; `None` leaves a field as it was (a later document that says
        nothing about opposition does not lift an earlier one).

        `opposition_at`: when the opposition was collected, if the source says (HL7 ZFA-10;
        default `now`). `consent_withdrawn`: the patient refused consultation (HL7 ZFA-11
        `INC`): the consent date is cleared; a consent date given in the same call wins."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO patients (ins, updated_at) VALUES (?, ?) "
                    "ON CONFLICT (ins) DO NOTHING", (ins, now.isoformat()))
                if feeding_opposition is not None:
                    since = (opposition_at or now).isoformat()
                    self._conn.execute(
                        "UPDATE patients SET feeding_opposition = ?, opposition_at = ?, "
                        "updated_at = ? WHERE ins = ?",
                        (int(feeding_opposition), since if feeding_opposition else None,
                         now.isoformat(), ins))
                if consent_withdrawn and consultation_consent_at is None:
                    self._conn.execute(
                        "UPDATE patients SET consultation_consent_at = NULL, updated_at = ? "
                        "WHERE ins = ?", (now.isoformat(), ins))
                if consultation_consent_at is not None:
                    self._conn.execute(
                        "UPDATE patients SET consultation_consent_at = ?, updated_at = ? "
                        "WHERE ins = ?",
                        (consultation_consent_at.isoformat(), now.isoformat(), ins),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        record = self.get(ins)
        assert record is not None
        return record

    def all(self) -> list[PatientRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT ins FROM patients ORDER BY updated_at DESC").fetchall()
        return [r for r in (self.get(row[0]) for row in rows) if r is not None]
