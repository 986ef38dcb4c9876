"""The export folder (connectors/folder_intake.py) on real files and a real SQLite queue.

The stability window is driven by explicit `now` values given to `scan_once`, so no test sleeps
to wait for time to pass; only the watchdog test runs the real loop.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.jobs import Intake, Job, JobState
from connectors.folder_intake import ORPHAN_AFTER, FolderIntake
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
}


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
