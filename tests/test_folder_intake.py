"""The export folder (connectors/folder_intake.py) on real files and a real SQLite queue.

The stability window is driven by explicit `now` values given to `scan_once`, so no test sleeps
to wait for time to pass; only the watchdog test runs the real loop.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.jobs import Intake, Job, JobState
from connectors.folder_intake import (
    MAX_FILE_BYTES,
    ORPHAN_AFTER,
    PAIRS_IN_FLIGHT,
    FolderIntake,
    Outcome,
)
from connectors.sqlite_store import SqliteStore
from service.demo import sample_documents
from service.sample_pdf import make_pdf

T0 = dt.datetime(2025, 3, 4, 9, 30, tzinfo=dt.UTC)
STABILITY = dt.timedelta(seconds=2)
GOOD_INS = "279035121518989"
NOT_SENT = "Rien n'a été envoyé"


def valid_sidecar() -> dict[str, Any]:
    """The demo's nursing-care sidecar, for the ANS test patient (INS 279035121518989)."""
    _stem, sidecar, _lines = sample_documents(T0)[0]
    sidecar = copy.deepcopy(sidecar)
    sidecar["patient"]["ins"] = GOOD_INS  # type: ignore[index]
    return sidecar


def pdf_bytes(text: str = "Pansement réalisé.") -> bytes:
    return make_pdf(["Fiche de soins infirmiers", text])


def drop_pair(folder: Path, stem: str, *, sidecar: dict[str, Any] | None = None,
              sidecar_bytes: bytes | None = None, pdf: bytes | None = None) -> None:
    """Write NAME.pdf, then NAME.json (the sidecar last, as practice software does)."""
    (folder / f"{stem}.pdf").write_bytes(pdf if pdf is not None else pdf_bytes())
    if sidecar_bytes is None:
        sidecar_bytes = json.dumps(sidecar or valid_sidecar(), ensure_ascii=False).encode()
    (folder / f"{stem}.json").write_bytes(sidecar_bytes)


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()} if folder.exists() else set()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "donnees" / "file.sqlite3") as opened:
        yield opened


@pytest.fixture
def enqueue(store: SqliteStore) -> Callable[[Intake], Awaitable[tuple[Job, bool]]]:
    async def _enqueue(intake: Intake) -> tuple[Job, bool]:
        return await asyncio.to_thread(store.enqueue, intake)

    return _enqueue


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "depot"
    folder.mkdir()
    return folder


@pytest.fixture
def intake(inbox: Path, enqueue: Callable[[Intake], Awaitable[tuple[Job, bool]]]) -> FolderIntake:
    folder_intake = FolderIntake(inbox, enqueue, stability=STABILITY)
    folder_intake.layout.create()
    return folder_intake


async def take_after_window(intake: FolderIntake, start: dt.datetime = T0) -> list[Any]:
    """First sight at `start`, then one scan once the stability window has passed."""
    assert await intake.scan_once(now=start) == []
    return await intake.scan_once(now=start + STABILITY)


# -- the happy path ---------------------------------------------------------------------------


async def test_a_pair_is_not_taken_on_first_sight(intake: FolderIntake, inbox: Path,
                                                  store: SqliteStore) -> None:
    drop_pair(inbox, "soins")

    assert await intake.scan_once(now=T0) == []
    assert await intake.scan_once(now=T0 + STABILITY / 2) == []

    assert names(inbox) == {"soins.pdf", "soins.json"}
    assert store.received() == 0


async def test_a_pair_unchanged_for_the_window_is_queued_and_moved_to_done(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    pdf = pdf_bytes()
    drop_pair(inbox, "soins", pdf=pdf)

    outcomes = await take_after_window(intake)

    assert len(outcomes) == 1
    outcome = outcomes[0]
    assert outcome.accepted and not outcome.duplicate and outcome.name == "soins"
    assert outcome.job is not None
    job = store.get(outcome.job.id)
    assert job is not None and job.state is JobState.QUEUED
    assert job.channel == "folder" and job.source_ref == "soins.pdf"
    assert store.payload(job.id) == pdf
    assert json.loads(store.metadata(job.id)) == valid_sidecar()
    assert names(inbox) == set()
    assert names(intake.layout.done) == {"soins.pdf", "soins.json"}
    assert names(intake.layout.claimed) == set()
    assert names(intake.layout.error) == set()


async def test_a_backlog_is_taken_several_pairs_at_once_each_moved_only_after_its_commit(
        inbox: Path, store: SqliteStore) -> None:
    """A pass takes up to PAIRS_IN_FLIGHT pairs at once (their commits share COMMITs): the
    first PAIRS_IN_FLIGHT commits are all under way before any of them returns — one pair at a
    time, the first would wait here for good — and never more. No pair reaches done/ before
    the COMMIT holding its job; the outcomes keep the order of the file names."""
    count = 2 * PAIRS_IN_FLIGHT + 3
    pdfs = {f"soins-{n:02d}": pdf_bytes(f"Passage {n}.") for n in range(count)}
    for stem, pdf in pdfs.items():
        drop_pair(inbox, stem, pdf=pdf)
    in_flight = most = 0
    window_full = asyncio.Event()
    moved_too_early: list[str] = []

    async def enqueue(intake: Intake) -> tuple[Job, bool]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == PAIRS_IN_FLIGHT:
            window_full.set()
        try:
            await asyncio.wait_for(window_full.wait(), timeout=10)
            if (inbox / "done" / intake.source_ref).exists():
                moved_too_early.append(intake.source_ref)
            return await asyncio.to_thread(store.enqueue, intake)
        finally:
            in_flight -= 1

    folder = FolderIntake(inbox, enqueue, stability=STABILITY)
    folder.layout.create()
    outcomes = await take_after_window(folder)

    assert [o.name for o in outcomes] == sorted(pdfs)
    assert all(o.accepted and not o.duplicate for o in outcomes)
    assert most == PAIRS_IN_FLIGHT
    assert moved_too_early == []
    assert store.received() == count
    assert {store.payload(o.job.id) for o in outcomes if o.job} == set(pdfs.values())
    assert names(folder.layout.done) == {f"{stem}{suffix}" for stem in pdfs
                                         for suffix in (".pdf", ".json")}
    assert names(inbox) == names(folder.layout.claimed) == set()


async def test_large_pairs_are_held_a_few_at_a_time_within_the_byte_budget(
        inbox: Path, store: SqliteStore) -> None:
    """Besides the count, the bytes of the pairs in flight are bounded: small ones go together
    up to the budget, one larger than the whole budget goes alone, and all are queued."""
    budget = 3 * 200_000
    sizes = [150_000] * 6 + [900_000] + [150_000] * 3
    pdfs = {f"soins-{n:02d}": pdf_bytes("x" * size) for n, size in enumerate(sizes)}
    for stem, pdf in pdfs.items():
        drop_pair(inbox, stem, pdf=pdf)
    held: list[int] = []  # bytes of the pairs whose commit is under way
    peaks: list[tuple[int, int]] = []  # (pairs, bytes) in flight at each commit's start

    async def enqueue(intake: Intake) -> tuple[Job, bool]:
        size = len(intake.payload) + len(intake.metadata)
        held.append(size)
        peaks.append((len(held), sum(held)))
        try:
            await asyncio.sleep(0.01)  # let the others come if the budget lets them
            return await asyncio.to_thread(store.enqueue, intake)
        finally:
            held.remove(size)

    folder = FolderIntake(inbox, enqueue, stability=STABILITY, in_flight_bytes=budget)
    folder.layout.create()
    outcomes = await take_after_window(folder)

    assert [o.name for o in outcomes] == sorted(pdfs) and store.received() == len(pdfs)
    assert max(pairs for pairs, _ in peaks) > 1  # small ones do go together
    assert all(total <= budget for pairs, total in peaks if pairs > 1)
    big = len(pdfs["soins-06"])
    assert [pairs for pairs, total in peaks if total >= big] == [1]  # the big one alone


async def test_an_undecodable_file_name_or_a_bug_in_one_pair_stops_no_other_pair(
        inbox: Path, store: SqliteStore) -> None:
    """A name with a byte that is not UTF-8 (possible on Linux) is queued like any other; an
    unexpected error while one pair is handled (here, the outcome callback failing for it) is
    logged without a file name and stops neither the other pairs nor the folder."""
    odd = os.fsdecode(b"soins-\xff")
    for stem in ("soins-1", odd, "soins-2", "soins-3"):
        drop_pair(inbox, stem, pdf=pdf_bytes(f"Passage {stem!a}."))

    def on_outcome(outcome: Outcome) -> None:
        if outcome.name == "soins-2":
            raise RuntimeError("a bug in a caller")

    folder = FolderIntake(inbox, enqueue_through(store), stability=STABILITY,
                          on_outcome=on_outcome)
    folder.layout.create()
    with capture_logs() as logs:
        outcomes = await take_after_window(folder)

    assert [o.name for o in outcomes] == ["soins-1", "soins-3", odd]
    assert store.received() == 4  # soins-2 too: its failure came after its commit
    assert names(folder.layout.claimed) == names(inbox) == set()
    [failed] = [e for e in logs if e["event"] == "folder_step_failed"]
    assert failed["error"] == "RuntimeError" and "soins" not in str(failed)
    job = store.get(next(o for o in outcomes if o.name == odd).job.id)  # type: ignore[union-attr]
    assert job is not None and job.source_ref == "soins-\\udcff.pdf"


def enqueue_through(store: SqliteStore) -> Callable[[Intake], Awaitable[tuple[Job, bool]]]:
    async def _enqueue(intake: Intake) -> tuple[Job, bool]:
        return await asyncio.to_thread(store.enqueue, intake)

    return _enqueue


async def test_a_pdf_still_growing_between_scans_is_not_taken(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    drop_pair(inbox, "soins")
    assert await intake.scan_once(now=T0) == []
    with (inbox / "soins.pdf").open("ab") as pdf:  # the writer is still at work
        pdf.write(b"\n% more bytes\n")

    assert await intake.scan_once(now=T0 + STABILITY) == []
    assert store.received() == 0
    assert names(inbox) == {"soins.pdf", "soins.json"}

    # Unchanged for a full window after the last change: now it is taken.
    outcomes = await intake.scan_once(now=T0 + 2 * STABILITY)
    assert [o.accepted for o in outcomes] == [True]
    assert store.received() == 1


# -- incomplete and unsupported inputs ----------------------------------------------------------


async def test_a_pdf_without_sidecar_waits_then_goes_to_error_after_ten_minutes(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    (inbox / "seul.pdf").write_bytes(pdf_bytes())

    assert await intake.scan_once(now=T0) == []
    assert await intake.scan_once(now=T0 + ORPHAN_AFTER - dt.timedelta(seconds=1)) == []
    assert names(inbox) == {"seul.pdf"}

    outcomes = await intake.scan_once(now=T0 + ORPHAN_AFTER)

    assert [(o.accepted, o.code) for o in outcomes] == [(False, "PAIR_INCOMPLETE")]
    assert names(inbox) == set()
    assert names(intake.layout.error) == {"seul.pdf", "seul.reason.txt"}
    reason = (intake.layout.error / "seul.reason.txt").read_text(encoding="utf-8")
    assert "sans la fiche JSON" in reason and "seul.json" in reason
    assert NOT_SENT in reason
    assert store.received() == 0


def _without_birth_date() -> dict[str, Any]:
    sidecar = valid_sidecar()
    del sidecar["patient"]["birth_date"]
    return sidecar


def _with_ins(ins: str) -> dict[str, Any]:
    sidecar = valid_sidecar()
    sidecar["patient"]["ins"] = ins
    return sidecar


WRONG_KEY_INS = GOOD_INS[:-1] + str((int(GOOD_INS[-1]) + 1) % 10)

BAD_INPUTS = {
    "json-invalide": (dict(sidecar_bytes=b'{"patient": {"ins": '), "SIDECAR_JSON",
                      "n'est pas un JSON valide"),
    "champ-manquant": (dict(sidecar=_without_birth_date()), "SIDECAR_INVALID",
                       "« patient.birth_date » (patient date de naissance) est manquant"),
    "cle-ins-fausse": (dict(sidecar=_with_ins(WRONG_KEY_INS)), "INS_KEY",
                       "La clé du matricule INS est fausse"),
    "pas-un-pdf": (dict(pdf=b"PK\x03\x04 this is a zip, not a PDF"), "PDF_NOT_PDF",
                   "n'est pas un PDF"),
    # Deeper than Python's JSON parser recurses, within the size limit (RecursionError).
    "json-trop-imbrique": (dict(sidecar_bytes=b"[" * 30_000 + b"]" * 30_000), "SIDECAR_JSON",
                           "imbriquées bien trop profondément"),
}


async def test_a_pdf_larger_than_any_document_is_refused_without_being_read(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    drop_pair(inbox, "scan")
    with (inbox / "scan.pdf").open("r+b") as pdf:
        pdf.truncate(MAX_FILE_BYTES + 1)  # a hole: no disk used, and never read

    outcomes = await take_after_window(intake)

    assert [(o.accepted, o.code) for o in outcomes] == [(False, "FILE_TOO_LARGE")]
    assert "il n'a pas été lu" in outcomes[0].message_fr
    assert names(intake.layout.error) == {"scan.pdf", "scan.json", "scan.reason.txt"}
    assert store.received() == 0


@pytest.mark.parametrize("stem", sorted(BAD_INPUTS))
async def test_a_bad_pair_goes_to_error_with_a_french_reason_and_creates_no_job(
        stem: str, intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    files, code, problem = BAD_INPUTS[stem]
    drop_pair(inbox, stem, **files)

    outcomes = await take_after_window(intake)

    assert [(o.accepted, o.code) for o in outcomes] == [(False, code)]
    assert problem in outcomes[0].message_fr
    assert names(inbox) == set()
    assert names(intake.layout.claimed) == set()
    assert names(intake.layout.done) == set()
    assert names(intake.layout.error) == {f"{stem}.pdf", f"{stem}.json", f"{stem}.reason.txt"}
    reason = (intake.layout.error / f"{stem}.reason.txt").read_text(encoding="utf-8")
    assert problem in reason
    assert NOT_SENT in reason
    assert store.received() == 0
    assert store.list_jobs() == []


async def test_an_unsupported_file_goes_to_error_once_its_writer_had_time_to_rename_it(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    (inbox / "courrier.docx").write_bytes(b"PK\x03\x04 word document")

    assert await intake.scan_once(now=T0) == []
    assert names(inbox) == {"courrier.docx"}
    outcomes = await intake.scan_once(now=T0 + ORPHAN_AFTER)

    assert [(o.accepted, o.code) for o in outcomes] == [(False, "FILE_UNSUPPORTED")]
    assert names(inbox) == set()
    assert names(intake.layout.error) == {"courrier.docx", "courrier.reason.txt"}
    reason = (intake.layout.error / "courrier.reason.txt").read_text(encoding="utf-8")
    assert "n'est pas d'un format pris en charge" in reason
    assert NOT_SENT in reason
    assert store.received() == 0


async def test_temporary_files_of_the_writer_are_ignored(intake: FolderIntake, inbox: Path,
                                                         store: SqliteStore) -> None:
    drop_pair(inbox, ".en-ecriture")
    drop_pair(inbox, "~copie")
    (inbox / "~$lettre.docx").write_bytes(b"lock file of a word processor")
    before = names(inbox)

    assert await intake.scan_once(now=T0) == []
    assert await intake.scan_once(now=T0 + STABILITY) == []
    assert await intake.scan_once(now=T0 + ORPHAN_AFTER + STABILITY) == []

    assert names(inbox) == before
    assert names(intake.layout.error) == set()
    assert store.received() == 0


# -- exactly once -------------------------------------------------------------------------------


async def test_the_same_pair_dropped_twice_is_one_job_and_nothing_is_overwritten(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    pdf = pdf_bytes()
    drop_pair(inbox, "soins", pdf=pdf)
    [first] = await take_after_window(intake)
    sidecar_done = (intake.layout.done / "soins.json").read_bytes()

    drop_pair(inbox, "soins", pdf=pdf)
    [second] = await take_after_window(intake, T0 + dt.timedelta(minutes=1))

    assert first.job is not None and second.job is not None
    assert not first.duplicate and second.duplicate
    assert second.accepted and second.job.id == first.job.id
    assert store.received() == 1 and len(store.list_jobs()) == 1
    assert names(intake.layout.done) == {"soins.pdf", "soins.json", "soins-2.pdf", "soins-2.json"}
    assert (intake.layout.done / "soins.pdf").read_bytes() == pdf
    assert (intake.layout.done / "soins.json").read_bytes() == sidecar_done
    assert names(inbox) == set()


# -- crash recovery -----------------------------------------------------------------------------


async def test_a_pair_left_claimed_by_a_crash_is_queued_once_at_restart(
        intake: FolderIntake, store: SqliteStore) -> None:
    # The process died after renaming both files into en-cours/, before the commit.
    drop_pair(intake.layout.claimed, "soins")

    outcomes = await intake.recover_claimed()

    assert [(o.accepted, o.duplicate) for o in outcomes] == [(True, False)]
    assert store.received() == 1
    assert names(intake.layout.claimed) == set()
    assert names(intake.layout.done) == {"soins.pdf", "soins.json"}
    assert await intake.recover_claimed() == []
    assert store.received() == 1


async def test_a_pair_committed_but_not_moved_before_a_crash_is_not_queued_again(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    drop_pair(inbox, "soins")
    [taken] = await take_after_window(intake)
    assert taken.job is not None
    # The process died after the commit, before moving the files out of en-cours/.
    for name in ("soins.pdf", "soins.json"):
        shutil.move(intake.layout.done / name, intake.layout.claimed / name)

    outcomes = await intake.recover_claimed()

    assert len(outcomes) == 1
    assert outcomes[0].duplicate and outcomes[0].job is not None
    assert outcomes[0].job.id == taken.job.id
    assert store.received() == 1
    assert names(intake.layout.claimed) == set()
    assert names(intake.layout.done) == {"soins.pdf", "soins.json"}


async def test_a_sidecar_alone_in_claimed_goes_back_to_the_inbox(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    (intake.layout.claimed / "soins.json").write_text(json.dumps(valid_sidecar()),
                                                      encoding="utf-8")

    assert await intake.recover_claimed() == []

    assert names(intake.layout.claimed) == set()
    assert names(inbox) == {"soins.json"}
    assert store.received() == 0


async def test_a_crash_between_the_two_renames_reunites_the_pair(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    # The sidecar is renamed first: a crash leaves it in en-cours/ and the PDF in the inbox.
    drop_pair(inbox, "soins")
    shutil.move(inbox / "soins.json", intake.layout.claimed / "soins.json")

    outcomes = await intake.recover_claimed()

    assert [o.accepted for o in outcomes] == [True]
    assert store.received() == 1
    assert names(inbox) == set()
    assert names(intake.layout.done) == {"soins.pdf", "soins.json"}


async def test_an_upper_case_pair_left_claimed_by_a_crash_is_recovered(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    (intake.layout.claimed / "SOINS.PDF").write_bytes(pdf_bytes())
    (intake.layout.claimed / "SOINS.JSON").write_text(json.dumps(valid_sidecar()),
                                                      encoding="utf-8")

    await intake.recover_claimed()

    assert names(intake.layout.claimed) == set()
    assert store.received() == 1


# -- the real loop with watchdog ----------------------------------------------------------------


async def test_run_queues_a_dropped_pair_and_stops_cleanly_when_cancelled(
        inbox: Path, store: SqliteStore,
        enqueue: Callable[[Intake], Awaitable[tuple[Job, bool]]]) -> None:
    folder_intake = FolderIntake(inbox, enqueue, stability=dt.timedelta(seconds=0.1),
                                 rescan_interval=0.2)
    task = asyncio.create_task(folder_intake.run())
    try:
        await asyncio.sleep(0.1)  # let it create the sub-folders and start watching
        drop_pair(inbox, "soins")
        async with asyncio.timeout(10):
            while store.received() == 0:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert store.received() == 1
    assert names(folder_intake.layout.done) == {"soins.pdf", "soins.json"}


async def test_a_full_disk_refuses_without_acknowledging_and_recovers_by_itself(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    """SQLite's page limit stands in for a full disk: the commit fails, so the files must stay
    where the practice left them (no move, no error file), and go once space is back."""
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more document
    drop_pair(inbox, "disque-plein", pdf=pdf_bytes("x" * 50_000))

    assert await take_after_window(intake) == []
    assert names(inbox) == {"disque-plein.pdf", "disque-plein.json"}
    assert names(intake.layout.error) == set() and names(intake.layout.done) == set()
    assert store.received() == 0

    store._conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
    outcomes = await take_after_window(intake, T0 + dt.timedelta(minutes=1))
    assert [o.accepted for o in outcomes] == [True]
    assert store.received() == 1
    assert names(intake.layout.done) == {"disque-plein.pdf", "disque-plein.json"}


# -- a file step that fails never stops the folder ----------------------------------------------


def block_folder(folder: Path) -> None:
    """Replace an (empty) sub-folder by a file of the same name: every rename into it fails, as
    when a user or an antivirus gets in the way."""
    folder.rmdir()
    folder.write_bytes(b"")


def fill_disk(store: SqliteStore) -> None:
    """SQLite's page limit stands in for a full disk: no room for one more document."""
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")


def free_disk(store: SqliteStore) -> None:
    store._conn.execute("PRAGMA max_page_count = 1073741823")


def logged_values(logs: list[dict[str, Any]]) -> str:
    return " ".join(str(value) for entry in logs for value in entry.values())


async def test_a_committed_pair_that_cannot_reach_done_waits_in_claimed_then_goes_alone(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    block_folder(intake.layout.done)
    drop_pair(inbox, "soins")
    drop_pair(inbox, "refuse", sidecar_bytes=b'{"patient": ')

    with capture_logs() as logs:
        outcomes = await take_after_window(intake)
        assert await intake.scan_once(now=T0 + 2 * STABILITY) == []  # still blocked

    # Committed once, and kept where the bridge can finish it; the refused pair went on.
    assert [(o.name, o.accepted) for o in outcomes] == [("refuse", False)]
    assert store.received() == 1
    assert names(intake.layout.claimed) == {"soins.pdf", "soins.json"}
    assert names(intake.layout.error) == {"refuse.pdf", "refuse.json", "refuse.reason.txt"}
    assert names(inbox) == {"done"}  # only the obstacle, left alone
    # Said once (not at every pass), with the folder at fault, and no file name.
    left = [e for e in logs if e["event"] == "folder_files_left_in_place"]
    # (Debug lines may be filtered out by the logging set up by an earlier test: only the
    # warnings are counted.)
    assert [(e["log_level"], e["target"], e["stage"]) for e in left
            if e["log_level"] != "debug"] == [("warning", "done", "inbox_pair")]
    assert "soins" not in logged_values(logs) and "refuse" not in logged_values(logs)

    intake.layout.done.unlink()  # the obstacle is gone; the same bridge, no restart
    [outcome] = await intake.scan_once(now=T0 + dt.timedelta(minutes=1))

    assert outcome.accepted and outcome.duplicate
    assert store.received() == 1 and len(store.list_jobs()) == 1
    assert names(intake.layout.done) == {"soins.pdf", "soins.json"}
    assert names(intake.layout.claimed) == set()


async def test_a_new_pair_never_overwrites_a_pair_of_the_same_name_waiting_in_claimed(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    block_folder(intake.layout.done)
    first, second = pdf_bytes("Premier passage."), pdf_bytes("Second passage.")
    drop_pair(inbox, "soins", pdf=first)
    await take_after_window(intake)
    drop_pair(inbox, "soins", pdf=second)  # the software reuses the name

    assert await take_after_window(intake, T0 + dt.timedelta(minutes=1)) == []

    assert (intake.layout.claimed / "soins.pdf").read_bytes() == first
    assert names(inbox) == {"soins.pdf", "soins.json", "done"}  # its namesake leaves first
    intake.layout.done.unlink()
    [finished] = await intake.scan_once(now=T0 + dt.timedelta(minutes=2))
    [taken] = await intake.scan_once(now=T0 + dt.timedelta(minutes=2) + STABILITY)

    assert finished.duplicate and taken.accepted and not taken.duplicate
    assert store.received() == 2
    assert (intake.layout.done / "soins.pdf").read_bytes() == first
    assert (intake.layout.done / "soins-2.pdf").read_bytes() == second
    assert names(inbox) == set() and names(intake.layout.claimed) == set()


async def test_a_refusal_that_cannot_reach_error_at_start_up_is_written_once_error_is_back(
        intake: FolderIntake, inbox: Path, store: SqliteStore) -> None:
    # A crash left a bad pair in en-cours/; at the restart, error/ is unusable.
    drop_pair(intake.layout.claimed, "refuse", sidecar_bytes=b'{"patient": ')
    drop_pair(inbox, "soins")
    block_folder(intake.layout.error)

    assert await intake.recover_claimed() == []
    outcomes = await take_after_window(intake)

    assert [o.accepted for o in outcomes] == [True]  # the next pair is still taken
    assert names(intake.layout.claimed) == {"refuse.pdf", "refuse.json"}
    assert not list(inbox.rglob("*.reason.txt"))  # no reason without its files
    intake.layout.error.unlink()
    [refused] = await intake.scan_once(now=T0 + dt.timedelta(minutes=1))

    assert (refused.accepted, refused.code) == (False, "SIDECAR_JSON")
    assert names(intake.layout.error) == {"refuse.pdf", "refuse.json", "refuse.reason.txt"}
    assert names(intake.layout.claimed) == set()
    assert store.received() == 1


async def test_files_given_back_keep_their_names_and_never_meet_a_newer_namesake(
        inbox: Path, store: SqliteStore) -> None:
    """The commit fails while the software writes a new soins.pdf (another patient): the
    claimed pair waits in en-cours/ instead of coming back as soins-2.*, where the old sidecar
    would have been paired with the new PDF."""
    newer = pdf_bytes("Autre patient.")

    async def enqueue_while_a_namesake_arrives(intake: Intake) -> tuple[Job, bool]:
        (inbox / "soins.pdf").write_bytes(newer)
        return await asyncio.to_thread(store.enqueue, intake)

    folder_intake = FolderIntake(inbox, enqueue_while_a_namesake_arrives, stability=STABILITY)
    folder_intake.layout.create()
    drop_pair(inbox, "soins", pdf=pdf_bytes("x" * 50_000))
    fill_disk(store)

    assert await take_after_window(folder_intake) == []

    assert names(folder_intake.layout.claimed) == {"soins.pdf", "soins.json"}
    assert names(inbox) == {"soins.pdf"} and (inbox / "soins.pdf").read_bytes() == newer
    free_disk(store)
    [outcome] = await folder_intake.scan_once(now=T0 + dt.timedelta(minutes=1))

    assert outcome.accepted and store.received() == 1
    assert names(folder_intake.layout.done) == {"soins.pdf", "soins.json"}
    assert (inbox / "soins.pdf").read_bytes() == newer  # waits for its own sidecar


async def test_run_keeps_going_while_done_is_unusable_and_finishes_once_it_is_back(
        inbox: Path, store: SqliteStore,
        enqueue: Callable[[Intake], Awaitable[tuple[Job, bool]]]) -> None:
    folder_intake = FolderIntake(inbox, enqueue, stability=dt.timedelta(seconds=0.1),
                                 rescan_interval=0.2)
    folder_intake.layout.create()
    block_folder(folder_intake.layout.done)  # already broken when the bridge starts
    task = asyncio.create_task(folder_intake.run())
    try:
        drop_pair(inbox, "soins")
        async with asyncio.timeout(10):
            while names(folder_intake.layout.claimed) != {"soins.pdf", "soins.json"} \
                    or store.received() == 0:
                await asyncio.sleep(0.05)
        drop_pair(inbox, "pansement")
        async with asyncio.timeout(10):
            while store.received() < 2:
                await asyncio.sleep(0.05)
        assert not task.done()

        folder_intake.layout.done.unlink()
        async with asyncio.timeout(10):
            while names(folder_intake.layout.claimed):
                await asyncio.sleep(0.05)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert store.received() == 2 and len(store.list_jobs()) == 2
    assert names(folder_intake.layout.done) == {"soins.pdf", "soins.json", "pansement.pdf",
                                                "pansement.json"}
