"""The simulator's own SQLite file: what the "DMP" registered, and who asked what.

Its schema is the simulator's, unrelated to the bridge's store. WAL + synchronous=FULL, one
transaction per request: either every change of a request is applied, or none is.

Each row of `entries` is one version of a DocumentEntry (spec §3.2): `entry_uuid` changes on
every new version (replacement or metadata update), `logical_id` stays the same across metadata
updates, `status` is Approved, Deprecated, Archived or Deleted. A uniqueId may appear on several
versions of the same logical document, never on two logical documents.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, fields
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    entry_uuid TEXT PRIMARY KEY,
    unique_id TEXT NOT NULL,
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
    received_at TEXT NOT NULL,
    logical_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    author_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_patient ON entries (patient_id, status);
CREATE INDEX IF NOT EXISTS entries_unique_id ON entries (unique_id);
CREATE INDEX IF NOT EXISTS entries_logical_id ON entries (logical_id);
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


class DuplicateUniqueId(Exception):
    """A uniqueId is already registered (possibly by a concurrent submission)."""


class StaleStatus(Exception):
    """An entry to change is no longer in the status the request was judged against."""


@dataclass(frozen=True)
class StoredDocument:
    """One registered DocumentEntry version with its bytes (signature entries included)."""

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
    metadata_xml: bytes  # the ExtrinsicObject as registered (entryUUID, hash, size)
    content: bytes
    tls_dn: str | None
    received_at: str
    logical_id: str = ""  # "" means: the entry's own entryUUID (a first version)
    version: int = 1
    author_id: str = ""  # PS_IdNat (XCN.1) of the entry's first authorPerson

    def __post_init__(self) -> None:
        if not self.logical_id:
            object.__setattr__(self, "logical_id", self.entry_uuid)


@dataclass(frozen=True)
class StatusChange:
    """Set `entry_uuid` from `expected` to `new` (StaleStatus if it is no longer `expected`)."""

    entry_uuid: str
    expected: str
    new: str


@dataclass(frozen=True)
class RequestRecord:
    """One request as seen by the simulator (no health data: codes and the TLS DN only)."""

    received_at: str
    service: str
    action: str | None
    tls_dn: str | None
    outcome: str
    codes: tuple[str, ...]


NAMES = tuple(f.name for f in fields(StoredDocument))
COLUMNS = ", ".join(NAMES)


def _same_cx(a: str, b: str) -> bool:
    """Same matricule and same assigning-authority OID (`id^^^&oid&ISO^NH`)."""
    def key(cx: str) -> tuple[str, str]:
        comps = cx.strip().split("^")
        authority = comps[3].split("&") if len(comps) > 3 else []
        return comps[0], authority[1] if len(authority) > 1 else ""
    return key(a) == key(b)


def _document(row: tuple[object, ...]) -> StoredDocument:
    values = dict(zip(NAMES, row, strict=True))
    values["is_signature"] = bool(values["is_signature"])
    return StoredDocument(**values)  # type: ignore[arg-type]


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

    def apply(self, add: list[StoredDocument], changes: list[StatusChange] | None = None) -> None:
        """Insert `add` and apply `changes` in one transaction.

        DuplicateUniqueId when a uniqueId of `add` belongs to another logical document;
        StaleStatus when an entry of `changes` moved since the request was judged.
        """
        marks = ", ".join("?" * len(NAMES))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for doc in add:
                    owner = self._db.execute(
                        "SELECT logical_id FROM entries WHERE unique_id = ?", (doc.unique_id,)
                    ).fetchone()
                    if owner is not None and owner[0] != doc.logical_id:
                        raise DuplicateUniqueId(doc.unique_id)
                for change in changes or []:
                    done = self._db.execute(
                        "UPDATE entries SET status = ? WHERE entry_uuid = ? AND status = ?",
                        (change.new, change.entry_uuid, change.expected),
                    )
                    if done.rowcount != 1:
                        raise StaleStatus(change.entry_uuid)
                for doc in add:
                    row = [getattr(doc, name) for name in NAMES]
                    row[NAMES.index("is_signature")] = int(doc.is_signature)
                    self._db.execute(
                        f"INSERT INTO entries ({COLUMNS}) VALUES ({marks})", row  # noqa: S608
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def add_documents(self, documents: list[StoredDocument]) -> None:
        """Register a whole lot atomically; DuplicateUniqueId if any uniqueId exists."""
        self.apply(documents, [])

    def known_unique_ids(self, unique_ids: list[str]) -> set[str]:
        """The subset of `unique_ids` already registered."""
        with self._lock:
            return {
                uid for uid in unique_ids
                if self._db.execute("SELECT 1 FROM entries WHERE unique_id = ?",
                                    (uid,)).fetchone() is not None
            }

    def _select(self, where: str, params: tuple[object, ...]) -> list[StoredDocument]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM entries {where} ORDER BY received_at, rowid",  # noqa: S608
                params,
            ).fetchall()
        return [_document(row) for row in rows]

    def documents(self) -> list[StoredDocument]:
        """Every registered entry version, oldest first (tests read what was stored here)."""
        return self._select("", ())

    def by_patient(self, patient_id: str) -> list[StoredDocument]:
        return self._select("WHERE patient_id = ?", (patient_id,))

    def by_patient_id(self, patient_id: str) -> list[StoredDocument]:
        """Entries of this INS, whatever the CX spelling (compared on matricule and OID)."""
        matricule = patient_id.split("^", maxsplit=1)[0]
        return [d for d in self._select("WHERE patient_id LIKE ?", (f"{matricule}^%",))
                if _same_cx(d.patient_id, patient_id)]

    def by_unique_id(self, unique_id: str) -> list[StoredDocument]:
        return self._select("WHERE unique_id = ?", (unique_id,))

    def by_entry_uuid(self, entry_uuid: str) -> list[StoredDocument]:
        return self._select("WHERE entry_uuid = ?", (entry_uuid,))

    def by_logical_id(self, logical_id: str) -> list[StoredDocument]:
        """Every version of a logical document, oldest first."""
        return sorted(self._select("WHERE logical_id = ?", (logical_id,)),
                      key=lambda d: d.version)

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

    def reset(self) -> None:
        """Forget every entry and every recorded request (admin « réinitialiser »)."""
        with self._lock:
            self._db.execute("DELETE FROM entries")
            self._db.execute("DELETE FROM requests")

    def counts(self) -> dict[str, int]:
        """Counters for /_simulateur/etat (no health data)."""
        with self._lock:
            one = self._db.execute
            return {
                "documents": one("SELECT COUNT(*) FROM entries WHERE is_signature = 0")
                .fetchone()[0],
                "signatures": one("SELECT COUNT(*) FROM entries WHERE is_signature = 1")
                .fetchone()[0],
                "lots": one("SELECT COUNT(DISTINCT submission_unique_id) FROM entries")
                .fetchone()[0],
                "requetes": one("SELECT COUNT(*) FROM requests").fetchone()[0],
                "refus": one("SELECT COUNT(*) FROM requests WHERE outcome != 'succes'")
                .fetchone()[0],
            }
