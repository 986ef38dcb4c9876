"""Every format legacy software drops in an export folder, on real files and a real queue.

Each file set is either queued (files to done/) or refused (files to error/ with NAME.reason.txt
in French); a refused file never stops the folder: the next files are still taken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.folder_formats import FolderFormat, FolderProfile
from bridge.jobs import Intake, Job
from bridge.lot_keys import with_lot_keys
from bridge.sidecar import parse_sidecar
from connectors.folder_intake import MAX_FILE_BYTES, ORPHAN_AFTER, FolderIntake, Outcome
from connectors.sqlite_store import SqliteStore
from mappings.matrix import Matrix
from mappings.matrix_load import load_matrix
from tests.factories import make_sidecar_dict
from tests.intake_formats.builders import (
    ANS,
    XXE,
    cda_file,
    hl7_file,
    hprim_net,
    hprim_sante,
    metadata_xml,
    pdf,
    xdm_zip,
    zip_bomb,
)

T0 = dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(seconds=3)
NOT_SENT = "Rien n'a été envoyé au DMP"
DOCTOR = {"rpps": "10101010101", "family_name": "MARTIN", "given_name": "Claire",
          "profession": "10", "structure_id": "499700366240007",
          "structure_name": "Cabinet médical des Lilas"}

Enqueue = Callable[[Intake], Awaitable[tuple[Job, bool]]]


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "donnees" / "file.sqlite3") as opened:
        yield opened


@pytest.fixture
def enqueue(store: SqliteStore) -> Enqueue:
    async def _enqueue(intake: Intake) -> tuple[Job, bool]:
        return await asyncio.to_thread(store.enqueue, with_lot_keys(intake))

    return _enqueue


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "depot"
    folder.mkdir()
    return folder


def folder(inbox: Path, enqueue: Enqueue, matrix: Matrix, *, ignore: tuple[str, ...] = (),
           **profile: Any) -> FolderIntake:
    intake = FolderIntake(inbox, enqueue, stability=dt.timedelta(seconds=2), matrix=matrix,
                          profile=FolderProfile(**profile), ignore=ignore)
    intake.layout.create()
    return intake


def names(path: Path) -> set[str]:
    return {p.name for p in path.iterdir() if p.is_file()}


async def settle(intake: FolderIntake) -> list[Outcome]:
    """Two scans a stability window apart: everything stable is taken."""
    await intake.scan_once(now=T0)
    return list(await intake.scan_once(now=LATER))


def reason_of(intake: FolderIntake, stem: str) -> str:
    return (intake.layout.error / f"{stem}.reason.txt").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ HL7 v2

async def test_an_hl7_message_file_is_queued_as_the_mllp_channel_would(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix)
    (inbox / "MSG0001.hl7").write_bytes(hl7_file(sep="\n"))

    outcomes = await settle(intake)

    assert [(o.accepted, o.name) for o in outcomes] == [(True, "MSG0001")]
    assert names(intake.layout.done) == {"MSG0001.hl7"}
    [job] = outcomes[0].jobs
    assert store.payload(job.id).startswith(b"%PDF-")
    request = parse_sidecar(store.metadata(job.id), file_name="x")
    assert (request.kind, request.author.rpps) == ("11506-3", "10101010101")


@pytest.mark.parametrize(("profile", "sector"), [
    ({}, "SA07"),  # nothing said anywhere: cabinet individuel, as over MLLP by default
    ({"hl7_author_sector": "SA33"}, "SA33"),  # the installation's [mllp] author_sector
    ({"author": {**DOCTOR, "sector": "SA08"}, "hl7_author_sector": "SA33"}, "SA08"),
    ({"author": DOCTOR, "hl7_author_sector": "SA33"}, "SA33"),  # the profile says no sector
])
async def test_an_hl7_file_takes_the_author_sector_its_folder_or_the_installation_gives(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore,
        profile: dict[str, Any], sector: str) -> None:
    intake = folder(inbox, enqueue, matrix, **profile)
    (inbox / "MSG0001.hl7").write_bytes(hl7_file())

    [outcome] = await settle(intake)

    assert outcome.accepted, outcome
    [job] = outcome.jobs
    request = parse_sidecar(store.metadata(job.id), file_name="x")
    assert request.author.sector_code == sector
    # Only the sector comes from the folder: the author is still the message's (PRT SB).
    assert (request.author.profession_code, request.author.family_name) == ("60", "SOIGNANTE")


async def test_the_ans_sample_with_a_placeholder_instead_of_a_cda_goes_to_error(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix)
    sample = Path(__file__).resolve().parent.parent / "fixtures" / "hl7"
    (inbox / "cr-radio.er7").write_bytes(
        (sample / "01-hl7-mdm-t02-cr-imagerie-init.er7").read_bytes())

    [outcome] = await settle(intake)

    assert outcome.code.startswith("HL7_")
    assert names(intake.layout.error) == {"cr-radio.er7", "cr-radio.reason.txt"}
    assert "ni un document CDA R2 ni un PDF" in reason_of(intake, "cr-radio")
    assert store.received() == 0


# ---------------------------------------------------------------------------------------- CDA

async def test_a_cda_file_goes_as_it_is_when_the_folder_says_identities_are_qualified(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix, cda_identity_qualified=True)
    cda = cda_file()
    (inbox / "cr.xml").write_bytes(cda)
    (inbox / "vaccination.xml").write_bytes((ANS / "13-cda-n3-note-vaccination.xml").read_bytes())

    outcomes = await settle(intake)

    assert sorted(o.accepted for o in outcomes) == [True, True]
    jobs = [job for o in outcomes for job in o.jobs]
    assert store.payload(jobs[0].id) == cda  # byte for byte
    vaccination = parse_sidecar(store.metadata(jobs[1].id), file_name="x")
    assert vaccination.kind == "87273-9"
    assert vaccination.patient.identity_status.value == "QUAL"


async def test_a_cda_without_the_folders_word_on_identity_is_refused_not_guessed(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix)
    (inbox / "cr.xml").write_bytes(cda_file())

    [outcome] = await settle(intake)

    assert outcome.code == "CDA_IDENTITY_STATUS"
    text = reason_of(intake, "cr")
    assert "cda_identity_qualified = true" in text and NOT_SENT in text
    assert store.received() == 0


async def test_an_xxe_cda_goes_to_error_and_the_next_files_are_still_taken(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix, cda_identity_qualified=True)
    (inbox / "piege.xml").write_bytes(XXE)
    (inbox / "bon.xml").write_bytes(cda_file())
    (inbox / "MSG.hl7").write_bytes(hl7_file())

    outcomes = await settle(intake)

    verdicts = {o.name: (o.accepted, o.code) for o in outcomes}
    assert verdicts == {"piege": (False, "CDA_UNREADABLE"), "bon": (True, ""),
                        "MSG": (True, "")}
    assert "DOCTYPE" in reason_of(intake, "piege")
    assert store.received() == 2


# ---------------------------------------------------------------------------------------- XDM

async def test_an_xdm_archive_queues_each_of_its_cda_documents(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix, cda_identity_qualified=True)
    second = cda_file(unique_id="2.25.4242", set_id="2.25.4243")
    (inbox / "mssante.zip").write_bytes(xdm_zip([("DOC0001.XML", cda_file(), "text/xml"),
                                                 ("DOC0002.XML", second, "text/xml")]))

    [outcome] = await settle(intake)

    assert outcome.accepted and len(outcome.jobs) == 2
    assert {store.payload(j.id) for j in outcome.jobs} == {cda_file(), second}
    assert names(intake.layout.done) == {"mssante.zip"}


@pytest.mark.parametrize(("archive", "code"), [
    (zip_bomb(8 * 1024 * 1024), "XDM_ZIP_BOMB"),
    (zip_bomb(), "XDM_TOO_LARGE"),
    (xdm_zip(extra=(("../../evil.sh", b"rm -rf"),)), "XDM_PATH_TRAVERSAL"),
    (xdm_zip(metadata=XXE), "XDM_METADATA_UNREADABLE"),
    (b"PK\x03\x04 coupe", "XDM_UNREADABLE"),
])
async def test_a_hostile_or_broken_archive_goes_to_error_with_its_reason(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore,
        archive: bytes, code: str) -> None:
    intake = folder(inbox, enqueue, matrix, cda_identity_qualified=True)
    (inbox / "archive.zip").write_bytes(archive)
    (inbox / "ensuite.hl7").write_bytes(hl7_file())

    outcomes = await settle(intake)

    verdicts = {o.name: o.code for o in outcomes}
    assert verdicts == {"archive": code, "ensuite": ""}
    assert names(intake.layout.error) == {"archive.zip", "archive.reason.txt"}
    assert NOT_SENT in reason_of(intake, "archive")
    assert store.received() == 1
    assert not (inbox.parent / "evil.sh").exists()


def sparse(path: Path, head: bytes, size: int) -> None:
    """A file of `size` bytes that starts with `head` (the rest a hole: no disk used)."""
    with path.open("wb") as file:
        file.write(head)
        file.truncate(size)


@pytest.mark.parametrize(("name", "size", "code"), [
    ("enorme.hl7", 33 * 2**20, "HL7_TOO_LARGE"),  # read, refused before it is parsed
    ("enorme.zip", MAX_FILE_BYTES + 1, "FILE_TOO_LARGE"),  # refused without being read
])
async def test_a_file_larger_than_any_document_goes_to_error_and_the_next_one_is_taken(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore,
        name: str, size: int, code: str) -> None:
    intake = folder(inbox, enqueue, matrix, cda_identity_qualified=True)
    sparse(inbox / name, hl7_file()[:200] if name.endswith(".hl7") else b"PK\x03\x04", size)
    (inbox / "ensuite.hl7").write_bytes(hl7_file())

    outcomes = await settle(intake)

    assert {o.name: o.code for o in outcomes} == {"enorme": code, "ensuite": ""}
    assert names(intake.layout.error) == {name, "enorme.reason.txt"}
    assert NOT_SENT in reason_of(intake, "enorme")
    assert store.received() == 1


# -------------------------------------------------------------------------------------- HPRIM

async def test_hprim_sante_takes_the_pdf_it_names_and_is_refused_without_an_ins(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix, author=DOCTOR)
    (inbox / "echo-0042.hpr").write_bytes(hprim_sante())
    (inbox / "echo-0042-cr.pdf").write_bytes(pdf())

    [outcome] = await settle(intake)

    assert outcome.code == "IDENTITY_INCOMPLETE"
    assert names(intake.layout.error) == {"echo-0042.hpr", "echo-0042-cr.pdf",
                                          "echo-0042.reason.txt"}
    text = reason_of(intake, "echo-0042")
    assert "l'INS" in text and "statut de l'identité" in text and "lieu de naissance" in text
    assert "date de naissance" not in text  # P-7 gave it
    assert names(inbox) == set()
    assert store.received() == 0


async def test_a_truncated_hprim_file_is_refused_with_its_line(
        inbox: Path, enqueue: Enqueue, matrix: Matrix) -> None:
    intake = folder(inbox, enqueue, matrix, author=DOCTOR)
    (inbox / "coupe.hpr").write_bytes(hprim_sante().split(b"OBX|2")[0])

    [outcome] = await settle(intake)

    assert outcome.code == "HPRIM_TRUNCATED"
    assert "ligne 4" in reason_of(intake, "coupe")


async def test_the_pdf_an_hprim_file_names_is_waited_for_then_reported(
        inbox: Path, enqueue: Enqueue, matrix: Matrix) -> None:
    intake = folder(inbox, enqueue, matrix, author=DOCTOR)
    (inbox / "echo-0042.hpr").write_bytes(hprim_sante())

    assert await intake.scan_once(now=T0) == []
    assert await intake.scan_once(now=LATER) == []
    [outcome] = await intake.scan_once(now=T0 + ORPHAN_AFTER)

    assert outcome.code == "HPRIM_PDF_MISSING"
    assert "echo-0042-cr.pdf" in reason_of(intake, "echo-0042")


async def test_an_hprim_net_header_with_its_pdf_reads_the_identity_it_has(
        inbox: Path, enqueue: Enqueue, matrix: Matrix) -> None:
    intake = folder(inbox, enqueue, matrix, author=DOCTOR)
    (inbox / "bio.hpm").write_bytes(hprim_net())
    (inbox / "bio.pdf").write_bytes(pdf())

    [outcome] = await settle(intake)

    assert outcome.code == "IDENTITY_INCOMPLETE"
    assert names(intake.layout.error) == {"bio.hpm", "bio.pdf", "bio.reason.txt"}
    text = reason_of(intake, "bio")
    assert "HPRIM Net" in text and "le sexe" in text and "le nom de naissance" not in text


async def test_an_hprim_file_without_a_profile_author_says_how_to_declare_one(
        inbox: Path, enqueue: Enqueue, matrix: Matrix) -> None:
    intake = folder(inbox, enqueue, matrix, identity_from_filename=True,
                    filename_pattern=r"(?P<ins>[0-9]{15})_(?P<sexe>[FM])_(?P<lieu>[0-9]{5})")
    (inbox / "279035121518989_F_51215.hpm").write_bytes(hprim_net())
    (inbox / "279035121518989_F_51215.pdf").write_bytes(pdf())

    [outcome] = await settle(intake)

    # The file name completed every trait but the status, which nothing in HPRIM carries.
    text = reason_of(intake, "279035121518989_F_51215")
    assert outcome.code == "IDENTITY_INCOMPLETE"
    assert "il manque le statut de l'identité (qualifiée)." in text


async def test_identity_is_never_read_from_the_file_name_unless_the_profile_says_so(
        inbox: Path, enqueue: Enqueue, matrix: Matrix) -> None:
    intake = folder(inbox, enqueue, matrix, author=DOCTOR,
                    filename_pattern=r"(?P<ins>[0-9]{15})_(?P<sexe>[FM])_(?P<lieu>[0-9]{5})")
    (inbox / "279035121518989_F_51215.hpm").write_bytes(hprim_net())
    (inbox / "279035121518989_F_51215.pdf").write_bytes(pdf())

    await settle(intake)

    text = reason_of(intake, "279035121518989_F_51215")
    assert "l'INS" in text and "le sexe" in text and "lieu de naissance" in text


async def test_a_text_only_letter_is_refused_after_its_identity_or_author(
        inbox: Path, enqueue: Enqueue, matrix: Matrix) -> None:
    intake = folder(inbox, enqueue, matrix)
    (inbox / "lettre.hpm").write_bytes(hprim_net())

    [outcome] = await settle(intake)

    assert outcome.code == "IDENTITY_INCOMPLETE"
    assert names(intake.layout.error) == {"lettre.hpm", "lettre.reason.txt"}


# ----------------------------------------------------------------------------------- profiles

async def test_a_folder_expecting_one_format_refuses_the_others(
        inbox: Path, enqueue: Enqueue, matrix: Matrix) -> None:
    intake = folder(inbox, enqueue, matrix, expected_format=FolderFormat.HPRIM_SANTE)
    (inbox / "MSG.hl7").write_bytes(hl7_file())

    [outcome] = await settle(intake)

    assert outcome.code == "FORMAT_UNEXPECTED"
    assert "hprim-sante" in reason_of(intake, "MSG")


async def test_ignored_files_are_never_touched_nor_reported(
        inbox: Path, enqueue: Enqueue, matrix: Matrix) -> None:
    intake = folder(inbox, enqueue, matrix, ignore=("*.log", "index.*"))
    (inbox / "export.LOG").write_text("journal du logiciel")
    (inbox / "INDEX.HTM").write_text("<html/>")

    assert await intake.scan_once(now=T0) == []
    assert await intake.scan_once(now=T0 + ORPHAN_AFTER) == []
    assert names(inbox) == {"export.LOG", "INDEX.HTM"}


async def test_the_pdf_json_pair_is_unchanged_next_to_the_other_formats(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix)
    (inbox / "soins.pdf").write_bytes(pdf())
    (inbox / "soins.json").write_text(json.dumps(make_sidecar_dict()), encoding="utf-8")
    (inbox / "MSG.hl7").write_bytes(hl7_file())

    outcomes = await settle(intake)

    assert sorted((o.name, o.accepted) for o in outcomes) == [
        ("MSG", True), ("soins", True)]
    assert names(intake.layout.done) == {"soins.pdf", "soins.json", "MSG.hl7"}


# ------------------------------------------------------------------------------------ crashes

async def test_a_file_set_left_claimed_by_a_crash_is_queued_once_at_restart(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix, cda_identity_qualified=True)
    (intake.layout.claimed / "mssante.zip").write_bytes(xdm_zip())

    [outcome] = await intake.recover_claimed()
    (intake.layout.claimed / "mssante.zip").write_bytes(xdm_zip())  # died before the move
    [again] = await intake.recover_claimed()

    assert outcome.accepted and again.duplicate
    assert store.received() == 1


# ------------------------------------------------------------------------- failed file steps

def fill_disk(store: SqliteStore) -> None:
    """SQLite's page limit stands in for a full disk: no room for one more large document."""
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")


def free_disk(store: SqliteStore) -> None:
    store._conn.execute("PRAGMA max_page_count = 1073741823")


async def test_a_committed_set_that_cannot_reach_done_is_finished_at_a_later_pass(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix, cda_identity_qualified=True)
    intake.layout.done.rmdir()
    intake.layout.done.write_bytes(b"")  # in the way of every move to done/
    (inbox / "MSG0001.hl7").write_bytes(hl7_file())
    (inbox / "piege.xml").write_bytes(XXE)

    outcomes = await settle(intake)

    assert [(o.name, o.accepted) for o in outcomes] == [("piege", False)]  # the rest goes on
    assert store.received() == 1
    assert names(intake.layout.claimed) == {"MSG0001.hl7"}
    intake.layout.done.unlink()
    [outcome] = await intake.scan_once(now=LATER + dt.timedelta(minutes=1))  # no restart

    assert outcome.accepted and outcome.duplicate
    assert store.received() == 1
    assert names(intake.layout.done) == {"MSG0001.hl7"}
    assert names(intake.layout.claimed) == set()


async def test_an_archive_whose_commit_stopped_half_way_is_not_queued_twice_under_a_new_name(
        inbox: Path, matrix: Matrix, store: SqliteStore) -> None:
    first_done: list[Job] = []

    async def disk_full_after_one_document(intake: Intake) -> tuple[Job, bool]:
        job, created = await asyncio.to_thread(store.enqueue, with_lot_keys(intake))
        if not first_done:
            first_done.append(job)
            fill_disk(store)
        return job, created

    intake = folder(inbox, disk_full_after_one_document, matrix, cda_identity_qualified=True)
    large = cda_file(unique_id="2.25.4242", set_id="2.25.4243", pdf=pdf("x" * 50_000))
    archive = xdm_zip([("DOC0001.XML", cda_file(), "text/xml"),
                       ("DOC0002.XML", large, "text/xml")])
    (inbox / "mssante.zip").write_bytes(archive)

    assert await settle(intake) == []
    assert store.received() == 1  # the first document only: the archive is back in the inbox
    assert names(inbox) == {"mssante.zip"}

    # The archive comes again under another name (a user copy, a mail client saving it again).
    (inbox / "mssante.zip").rename(inbox / "mssante-2.zip")
    free_disk(store)
    await intake.scan_once(now=T0 + dt.timedelta(minutes=1))
    [outcome] = await intake.scan_once(now=LATER + dt.timedelta(minutes=1))

    assert outcome.accepted and not outcome.duplicate  # the second document is new
    assert outcome.jobs[0].id == first_done[0].id  # the first one was found by its key
    assert store.received() == 2 and len(store.list_jobs()) == 2
    assert {store.payload(job.id) for job in outcome.jobs} == {cda_file(), large}
    assert names(intake.layout.done) == {"mssante-2.zip"}


async def test_an_archive_listing_one_document_twice_goes_to_error_with_its_reason(
        inbox: Path, enqueue: Enqueue, matrix: Matrix, store: SqliteStore) -> None:
    intake = folder(inbox, enqueue, matrix, cda_identity_qualified=True)
    cda = cda_file()
    twice = metadata_xml([("DOC0001.XML", cda, "text/xml"), ("DOC0001.XML", cda, "text/xml")])
    (inbox / "envoi.zip").write_bytes(xdm_zip([("DOC0001.XML", cda, "text/xml")],
                                              metadata=twice))

    [outcome] = await settle(intake)

    assert outcome.code == "XDM_DUPLICATE_DOCUMENT"
    assert names(intake.layout.error) == {"envoi.zip", "envoi.reason.txt"}
    reason = reason_of(intake, "envoi")
    assert "décrit deux fois le document DOC0001.XML" in reason and NOT_SENT in reason
    assert store.received() == 0
