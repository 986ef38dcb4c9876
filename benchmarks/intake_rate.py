"""Durable intake rate: documents/s committed through `SqliteStore.enqueue`, called the way the
service calls it, compared with the best the disk allows for the same durability.

Why: a document is acknowledged (file moved to done/, HTTP 202, HL7 ACK) only after its commit
(DESIGN.md §4), so the commit rate bounds how fast a practice's backlog can be taken in. The
floor of that cost is one fsync'ed SQLite transaction per document. The baseline is therefore
raw SQLite — WAL, `synchronous=FULL`, one `INSERT` of the same bytes (100 KB PDF + sidecar) and
one `COMMIT` per document, one after the other — on the same disk. The store adds the
idempotency lookup and the job row with its indexes (the payload row holds the same bytes as
the raw row); the target is that all of it keeps ≥ 80 % of the raw rate (ratio ≥ 0.8). The
SHA-256 of the payload is computed by the connectors with their idempotency key, as the keys
here are (before the clock starts; `Intake.payload_sha256`); a channel that did not would have
the store hash it (≈ 0.09 ms for 100 KB here).

Three modes, each against its own raw run:
- `store`: `store.enqueue(intake)` called directly, one document after the other: the store's
  own cost, as this benchmark measured it before (for comparison over time);
- `service×N`: the service's intake path (`service.runner`): each channel awaits
  `asyncio.to_thread(store.enqueue, with_lot_keys(intake))` from the event loop, on the default
  executor, with N producers each sending its next document once the previous one is
  acknowledged (closed loop), as senders do. Concurrent `enqueue` calls share COMMITs (group
  commit, `connectors.sqlite_base.CommitGroups`; each is still acknowledged only after the
  COMMIT holding its document). The thread hop of `to_thread` is part of that path and of its
  figure.
  - `service×8` (default, `PAIRS_IN_FLIGHT`): the folder intake taking a backlog, which
    processes that many pairs at once (`connectors.folder_intake`), or as many HTTP uploads
    (`[http] max_concurrent_uploads` = 8): how fast a practice's backlog is taken in;
  - `service×1`: one sender that waits for each acknowledgement before sending the next, as
    one HL7 (MLLP) connection does: no two of its documents can share a COMMIT, and each pays
    the thread hop (≈ 0.2 ms here) on top of its own COMMIT.
- `folder` (for information, no target: it does more than the raw side): the real
  `FolderIntake` wired as the service wires it, taking each block of pairs written to its inbox
  before the clock starts; timed: reading and checking each pair, the patient registry and the
  lot keys, the commit, the moves to done/ with the fsync of done/, its log lines (to a JSON
  file, as the service writes them).
The lot keys (`with_lot_keys`) are computed before the clock starts: they are CPU of the intake,
not of the store.

Raw and store commits alternate block by block (`BLOCK` documents each), so that disk noise
(other processes) hits both alike; the headline of each mode is the ratio of the two
throughputs (documents / total time of their blocks). Raw SQLite checkpoints its WAL inside
its COMMITs (automatic checkpoint, every 1000 pages); the store checkpoints from a thread of its
own while intake goes on. A store block ends once that thread has copied the block's pages
(`store.checkpoint()`, timed with the block), so the store's checkpoints are paid by the store
and never run during a raw block. `--runs N` repeats each mode on fresh files and reports the
median ratio (the spread between runs on a shared machine is often ±0.05).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import sqlite3
import statistics
import time
from pathlib import Path

import _common

from bridge.jobs import Intake, Job
from bridge.lot_keys import with_lot_keys
from connectors.folder_intake import PAIRS_IN_FLIGHT, FolderIntake
from connectors.sqlite_patients import SqlitePatientRegistry
from connectors.sqlite_store import SqliteStore
from service.logs import configure_logging
from service.runner import record_and_enqueue

NAME = "intake_rate"
DOCUMENTS = 1500
BLOCK = 100
MODES = ("store", f"service×{PAIRS_IN_FLIGHT}", "service×1", "folder")
TARGET_RATIO = 0.8


def make_intakes(count: int) -> list[Intake]:
    """Distinct 100 KB PDF + sidecar pairs, as the folder connector hands them over, with the
    lot keys the service adds before `enqueue`."""
    sidecar = _common.sidecar_bytes()
    intakes = []
    for n in range(count):
        pdf = _common.make_pdf_100k(n)
        name = f"soins-{n}.pdf"
        intakes.append(with_lot_keys(Intake(
            "folder", name, _common.folder_key(name, pdf, sidecar), pdf, sidecar,
            _common.now_utc(), payload_sha256=hashlib.sha256(pdf).hexdigest())))
    return intakes


def open_raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, payload BLOB, metadata BLOB)")
    return conn


def raw_block(conn: sqlite3.Connection, block: list[Intake]) -> float:
    """Seconds to commit the documents one transaction each, one after the other, raw SQLite."""
    start = time.perf_counter()
    for intake in block:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO docs (payload, metadata) VALUES (?, ?)",
                     (intake.payload, intake.metadata))
        conn.execute("COMMIT")
    return time.perf_counter() - start


def direct_block(store: SqliteStore, block: list[Intake]) -> float:
    """Seconds to enqueue the documents one after the other, calling the store directly, and
    to have them checkpointed."""
    start = time.perf_counter()
    for intake in block:
        _, created = store.enqueue(intake)
        assert created
    store.checkpoint()
    return time.perf_counter() - start


async def store_block(store: SqliteStore, block: list[Intake], producers: int) -> float:
    """Seconds for `producers` closed-loop senders to have every document of the block
    acknowledged through the service's path (`asyncio.to_thread(store.enqueue, …)`), and
    checkpointed."""
    todo = iter(block)

    async def producer() -> None:
        for intake in todo:  # shared: each takes the next document once its last is acked
            _, created = await asyncio.to_thread(store.enqueue, intake)
            assert created

    start = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(producers)))
    await asyncio.to_thread(store.checkpoint)
    return time.perf_counter() - start


async def folder_block(folder: FolderIntake, store: SqliteStore, block: list[Intake]) -> float:
    """Seconds for the real folder intake to take the block's pairs, dropped in its inbox
    before the clock starts: one pass reads and checks each pair, commits it through the
    service's `record_and_enqueue` (`PAIRS_IN_FLIGHT` at a time), moves it to done/ (a rename
    per file and an fsync of done/); then the checkpoint, as for the other modes."""
    for intake in block:
        pdf = folder.layout.inbox / intake.source_ref
        pdf.write_bytes(intake.payload)
        pdf.with_suffix(".json").write_bytes(intake.metadata)
    start = time.perf_counter()
    outcomes = await folder.scan_once()
    await asyncio.to_thread(store.checkpoint)
    elapsed = time.perf_counter() - start
    assert len(outcomes) == len(block) and all(o.accepted and not o.duplicate for o in outcomes)
    return elapsed


def real_folder(tmp: Path, name: str, store: SqliteStore) -> FolderIntake:
    """A folder intake wired as `service.runner` wires it (no stability wait: the files are
    complete before the pass)."""
    # Its log lines go to a JSON file, as the service's do (not to this terminal).
    configure_logging(tmp / f"bridge-{name}.log", stderr=False)
    registry = SqlitePatientRegistry(tmp / f"patients-{name}.sqlite3")

    async def enqueue(intake: Intake) -> tuple[Job, bool]:
        return await asyncio.to_thread(record_and_enqueue, registry, store, intake)

    folder = FolderIntake(tmp / f"depot-{name}", enqueue, stability=dt.timedelta(0))
    folder.layout.inbox.mkdir()
    folder.layout.create()
    return folder


async def measure(tmp: Path, intakes: list[Intake], mode: str, run: int) -> tuple[float, float]:
    """(raw documents/s, store documents/s), blocks interleaved, fresh files for this run."""
    raw = open_raw(tmp / f"raw-{mode}-{run}.sqlite3")
    store = SqliteStore.open(tmp / f"store-{mode}-{run}.sqlite3")
    producers = int(mode.partition("×")[2]) if mode.startswith("service×") else 0
    folder = real_folder(tmp, f"{run}", store) if mode == "folder" else None
    raw_times: list[float] = []
    store_times: list[float] = []

    async def store_side(block: list[Intake]) -> None:
        if folder is not None:
            store_times.append(await folder_block(folder, store, block))
        elif producers == 0:
            store_times.append(direct_block(store, block))
        else:
            store_times.append(await store_block(store, block, producers))

    try:
        for n in range(0, len(intakes), BLOCK):
            block = intakes[n:n + BLOCK]
            # Alternate which side goes first, so neither always gets the warmer disk.
            if (n // BLOCK) % 2 == 0:
                raw_times.append(raw_block(raw, block))
                await store_side(block)
            else:
                await store_side(block)
                raw_times.append(raw_block(raw, block))
        assert store.received() == len(intakes)
    finally:
        raw.close()
        store.close()
    per_doc = [t / BLOCK for t in store_times]
    print(f"  {mode:9s} run {run + 1}: raw {len(intakes) / sum(raw_times):.0f} documents/s,"
          f" store {len(intakes) / sum(store_times):.0f} documents/s"
          f" (median per document: raw {statistics.median(raw_times) / BLOCK * 1000:.2f} ms,"
          f" store {statistics.median(per_doc) * 1000:.2f} ms);"
          f" ratio {sum(raw_times) / sum(store_times):.3f}")
    return len(intakes) / sum(raw_times), len(intakes) / sum(store_times)


async def main_async(documents: int, modes: list[str], runs: int) -> None:
    print(f"{NAME}: {documents} documents per side and per mode, blocks of {BLOCK} interleaved;"
          " raw = one INSERT+COMMIT per document, one after the other. Modes: store = direct"
          " store.enqueue calls, one after the other; service×N = the service's intake path,"
          " asyncio.to_thread(store.enqueue, …) from N closed-loop producers (N > 1: concurrent"
          " calls share COMMITs, group commit)")
    with _common.temp_dir_on_project_disk("dmp-bench-intake-") as tmp:
        print(f"  temp dir: {tmp} (same device as the project)")
        intakes = make_intakes(documents)
        size = sum(len(i.payload) + len(i.metadata) for i in intakes) / documents
        print(f"  bytes per document: {size / 1024:.1f} KiB (PDF + sidecar)")
        results = {mode: [await measure(tmp, intakes, mode, run) for run in range(runs)]
                   for mode in modes}
    for mode, rates in results.items():
        who = {
            "store": "store alone (direct calls, one at a time)",
            f"service×{PAIRS_IN_FLIGHT}": f"service path, backlog ({PAIRS_IN_FLIGHT} pairs in"
                                          " flight in the folder intake), group commit",
            "service×1": "service path, one sender awaiting each acknowledgement (an HL7"
                         " connection)",
            "folder": "whole folder intake of a backlog (files read, checked, committed,"
                      " moved to done/)",
        }.get(mode, f"service path, {mode.partition('×')[2]} concurrent producers,"
                    " group commit")
        ratios = sorted(store_rate / raw_rate for raw_rate, store_rate in rates)
        raw_rate, store_rate = (statistics.median(side) for side in zip(*rates, strict=True))
        spread = f", median of {runs} runs ({', '.join(f'{r:.3f}' for r in ratios)})"
        # The folder mode does more than the raw side (files read, checked, moved): a figure
        # for information, not a measure of the target.
        target = None if mode == "folder" else TARGET_RATIO
        _common.report(NAME, f"enqueue rate ÷ raw INSERT+COMMIT rate, {who}",
                       statistics.median(ratios), "", target, higher_is_better=True,
                       note=f"{store_rate:.0f} vs {raw_rate:.0f} docs/s, 100 KB PDF"
                            + (spread if runs > 1 else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=DOCUMENTS)
    parser.add_argument("--modes", nargs="+", default=list(MODES),
                        help="store, service×N (N producers); default: %(default)s")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs per mode, fresh files each; the median ratio is reported")
    args = parser.parse_args()
    if args.documents % BLOCK:
        parser.error(f"--documents must be a multiple of {BLOCK}")
    for mode in args.modes:
        if mode not in ("store", "folder") and not (mode.startswith("service×")
                                                    and mode.partition("×")[2].isdigit()):
            parser.error(f"unknown mode {mode!r}: store, service×N or folder")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    asyncio.run(main_async(args.documents, args.modes, args.runs))


if __name__ == "__main__":
    main()
