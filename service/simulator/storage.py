"""The simulator's own SQLite file: what the "DMP" registered, and who asked what.

Its schema is the simulator's, unrelated to the bridge's store. WAL + synchronous=FULL, one
transaction per submission: either every document of a lot is registered, or none is.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    entry_uuid TEXT PRIMARY KEY,
    unique_id TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL,
    submission_unique_id TEXT NOT NULL,
    status TEXT NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mime_type TEXT NOT NULL,
    type_code TEXT NOT NULL,
    class_code TEXT NOT NULL,
    format_code TEXT NOT NULL,
    is_signature INTEGER NOT NULL,
    metadata_xml BLOB NOT NULL,
    content BLOB NOT NULL,
    tls_dn TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_patient ON documents (patient_id, status);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    service TEXT NOT NULL,
    action TEXT,
    tls_dn TEXT,
    outcome TEXT NOT NULL,
    codes TEXT NOT NULL
);
"""
COLUMNS = (
    "entry_uuid, unique_id, patient_id, submission_unique_id, status, hash, size, mime_type, "
    "type_code, class_code, format_code, is_signature, metadata_xml, content, tls_dn, received_at"
)


class DuplicateUniqueId(Exception):
    """A uniqueId is already registered (possibly by a concurrent submission)."""


@dataclass(frozen=True)
class StoredDocument:
    """One registered DocumentEntry with its bytes (signature entries included)."""

    entry_uuid: str
    unique_id: str
    patient_id: str
    submission_unique_id: str
    status: str
    hash: str
    size: int
    mime_type: str
    type_code: str
    class_code: str
    format_code: str
    is_signature: bool
    metadata_xml: bytes  # the ExtrinsicObject as registered (entryUUID, status, hash, size)
    content: bytes
    tls_dn: str | None
    received_at: str


@dataclass(frozen=True)
class RequestRecord:
    """One request as seen by the simulator (no health data: codes and the TLS DN only)."""

    received_at: str
    service: str
    action: str | None
    tls_dn: str | None
    outcome: str
    codes: tuple[str, ...]


def _document(row: tuple[object, ...]) -> StoredDocument:
    values = list(row)
    values[11] = bool(values[11])
    return StoredDocument(*values)  # type: ignore[arg-type]


class SimulatorStore:
    """Thread-safe access to the simulator's SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_documents(self, documents: list[StoredDocument]) -> None:
        """Register a whole lot atomically; DuplicateUniqueId if any uniqueId exists."""
        marks = ", ".join("?" * 16)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for doc in documents:
                    self._db.execute(
                        f"INSERT INTO documents ({COLUMNS}) VALUES ({marks})",  # noqa: S608
                        (doc.entry_uuid, doc.unique_id, doc.patient_id, doc.submission_unique_id,
                         doc.status, doc.hash, doc.size, doc.mime_type, doc.type_code,
                         doc.class_code, doc.format_code, int(doc.is_signature),
                         doc.metadata_xml, doc.content, doc.tls_dn, doc.received_at),
                    )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                raise DuplicateUniqueId from exc
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def known_unique_ids(self, unique_ids: list[str]) -> set[str]:
        """The subset of `unique_ids` already registered."""
        with self._lock:
            found = set()
            for uid in unique_ids:
                row = self._db.execute(
                    "SELECT 1 FROM documents WHERE unique_id = ?", (uid,)
                ).fetchone()
                if row is not None:
                    found.add(uid)
            return found

    def _select(self, where: str, params: tuple[object, ...]) -> list[StoredDocument]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM documents {where} ORDER BY received_at, rowid",  # noqa: S608
                params,
            ).fetchall()
        return [_document(row) for row in rows]

    def documents(self) -> list[StoredDocument]:
        """Every registered entry, oldest first (tests read what was stored here)."""
        return self._select("", ())

    def by_patient(self, patient_id: str) -> list[StoredDocument]:
        return self._select("WHERE patient_id = ?", (patient_id,))

    def by_unique_id(self, unique_id: str) -> list[StoredDocument]:
        return self._select("WHERE unique_id = ?", (unique_id,))

    def by_entry_uuid(self, entry_uuid: str) -> list[StoredDocument]:
        return self._select("WHERE entry_uuid = ?", (entry_uuid,))

    def record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO requests (received_at, service, action, tls_dn, outcome, codes) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (record.received_at, record.service, record.action, record.tls_dn,
                 record.outcome, ",".join(record.codes)),
            )

    def requests(self) -> list[RequestRecord]:
        """Every request seen, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT received_at, service, action, tls_dn, outcome, codes FROM requests "
                "ORDER BY id"
            ).fetchall()
        return [RequestRecord(r[0], r[1], r[2], r[3], r[4], tuple(c for c in r[5].split(",") if c))
                for r in rows]

    def counts(self) -> dict[str, int]:
        """Counters for /_simulateur/etat (no health data)."""
        with self._lock:
            one = self._db.execute
            return {
                "documents": one("SELECT COUNT(*) FROM documents WHERE is_signature = 0")
                .fetchone()[0],
                "signatures": one("SELECT COUNT(*) FROM documents WHERE is_signature = 1")
                .fetchone()[0],
                "lots": one("SELECT COUNT(DISTINCT submission_unique_id) FROM documents")
                .fetchone()[0],
                "requetes": one("SELECT COUNT(*) FROM requests").fetchone()[0],
                "refus": one("SELECT COUNT(*) FROM requests WHERE outcome != 'succes'")
                .fetchone()[0],
            }
