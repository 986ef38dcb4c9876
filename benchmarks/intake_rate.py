"""Durable intake rate: documents/s committed through `SqliteStore.enqueue`, compared with the
best the disk allows for the same durability.

Why: a document is acknowledged (file moved to done/, HTTP 202, HL7 ACK) only after its commit
(DESIGN.md §4), so the commit rate bounds how fast a practice's backlog can be taken in. The
floor of that cost is one fsync'ed SQLite transaction per document. The baseline is therefore
raw SQLite — WAL, `synchronous=FULL`, one `INSERT` of the same bytes (100 KB PDF + sidecar) and
one `COMMIT` per document — on the same disk. The store adds the idempotency lookup, the job
row, the event row, the counter and the SHA-256 of the payload; the target is that all of it
keeps ≥ 80 % of the raw rate (ratio ≥ 0.8).

Baseline and store commits alternate document by document, so that disk noise (other
processes, WAL checkpoints) hits both alike; the headline is
the ratio of the two throughputs (documents / total commit time).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path

import _common

from bridge.jobs import Intake
from connectors.sqlite_store import SqliteStore

NAME = "intake_rate"
DOCUMENTS = 1500
TARGET_RATIO = 0.8


def make_intakes(count: int) -> list[Intake]:
    """Distinct 100 KB PDF + sidecar pairs, as the folder connector hands them to the store."""
    sidecar = _common.sidecar_bytes()
    intakes = []
    for n in range(count):
        pdf = _common.make_pdf_100k(n)
        name = f"soins-{n}.pdf"
        intakes.append(Intake("folder", name, _common.folder_key(name, pdf, sidecar), pdf,
                              sidecar, _common.now_utc()))
    return intakes


def open_raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, payload BLOB, metadata BLOB)")
    return conn


def raw_commit(conn: sqlite3.Connection, intake: Intake) -> float:
    """Seconds to commit one document in its own transaction, raw SQLite."""
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO docs (payload, metadata) VALUES (?, ?)",
                 (intake.payload, intake.metadata))
    conn.execute("COMMIT")
    return time.perf_counter() - start


def store_commit(store: SqliteStore, intake: Intake) -> float:
    """Seconds to enqueue one document through the real store (one transaction)."""
    start = time.perf_counter()
    _, created = store.enqueue(intake)
    elapsed = time.perf_counter() - start
    assert created
    return elapsed


def main() -> None:
    print(f"{NAME}: {DOCUMENTS} documents per side, raw and store commits interleaved")
    with _common.temp_dir_on_project_disk("dmp-bench-intake-") as tmp:
        print(f"  temp dir: {tmp} (same device as the project)")
        intakes = make_intakes(DOCUMENTS)
        size = sum(len(i.payload) + len(i.metadata) for i in intakes) / DOCUMENTS
        print(f"  bytes per document: {size / 1024:.1f} KiB (PDF + sidecar)")
        raw = open_raw(tmp / "raw.sqlite3")
        store = SqliteStore.open(tmp / "store.sqlite3")
        raw_times: list[float] = []
        store_times: list[float] = []
        try:
            for n, intake in enumerate(intakes):
                # Alternate which side goes first, so neither always gets the warmer disk.
                if n % 2 == 0:
                    raw_times.append(raw_commit(raw, intake))
                    store_times.append(store_commit(store, intake))
                else:
                    store_times.append(store_commit(store, intake))
                    raw_times.append(raw_commit(raw, intake))
        finally:
            raw.close()
            store.close()
    raw_rate, store_rate = DOCUMENTS / sum(raw_times), DOCUMENTS / sum(store_times)
    raw_median, store_median = statistics.median(raw_times), statistics.median(store_times)
    print(f"  raw SQLite (WAL, synchronous=FULL, INSERT+COMMIT): {raw_rate:.0f} documents/s"
          f" (median commit {raw_median * 1000:.2f} ms)")
    print(f"  SqliteStore.enqueue (WAL, synchronous=FULL):       {store_rate:.0f} documents/s"
          f" (median commit {store_median * 1000:.2f} ms)")
    print(f"  ratio of median commit times (diagnostic, ignores checkpoint stalls): "
          f"{raw_median / store_median:.3f}")
    _common.report(NAME, "enqueue rate ÷ raw INSERT+COMMIT rate", store_rate / raw_rate, "",
                   TARGET_RATIO, higher_is_better=True,
                   note=f"{store_rate:.0f} vs {raw_rate:.0f} docs/s, 100 KB PDF")


if __name__ == "__main__":
    main()
