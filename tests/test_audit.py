"""The audit journal: append-only, hash-chained, verifiable (DESIGN.md §6, issue 8 item 3)."""

from __future__ import annotations

import json
import os
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditError,
    AuditFields,
    chain,
    parse_line,
    patient_pseudonym,
    to_line,
    verify,
)
from connectors.audit_journal import AuditJournal, verify_path
from tests.ops.file_attributes import attribute

INS = "279035121518989"
SECRET = b"secret-local-de-test-0123456789"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def fill(path: Path, count: int = 50) -> list[str]:
    """`count` records, one minute apart; returns the hashes."""
    pseudo = patient_pseudonym(INS, SECRET)
    hashes = []
    with AuditJournal.open(path) as journal:
        for i in range(count):
            record = journal.append(
                actor="dispatcher",
                action=AuditAction.ENVOI,
                job_id=i + 1,
                document_unique_id=f"1.2.250.1.999.1.{i + 1}",
                patient_pseudonym=pseudo,
                outcome="ok",
                detail="tentative 1",
                at=T0 + timedelta(minutes=i),
            )
            hashes.append(record.hash)
    return hashes


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.jsonl"


def test_a_chain_of_50_records_verifies(journal_path: Path) -> None:
    hashes = fill(journal_path)
    result = verify_path(journal_path, last_hash=hashes[-1])
    assert result.ok and result.count == 50 and result.position is None
    assert lines(journal_path)[0].startswith(b'{"action":"envoi","actor":"dispatcher"')


def test_an_edited_record_fails_at_its_position(journal_path: Path) -> None:
    fill(journal_path)
    content = lines(journal_path)
    record = json.loads(content[16])
    record["outcome"] = "XDSRegistryError"
    content[16] = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
    journal_path.write_bytes(b"".join(content))
    result = verify_path(journal_path)
    assert not result.ok and result.position == 17 and result.code == "AUDIT_EDITED"
    assert "ligne 17" in result.message_fr and "modifié" in result.message_fr


def test_a_reformatted_line_is_an_edit(journal_path: Path) -> None:
    fill(journal_path, 5)
    content = lines(journal_path)
    content[2] = (json.dumps(json.loads(content[2]), sort_keys=True) + "\n").encode()
    journal_path.write_bytes(b"".join(content))
    result = verify_path(journal_path)
    assert (result.ok, result.position, result.code) == (False, 3, "AUDIT_EDITED")


def test_a_deleted_record_fails_at_its_position(journal_path: Path) -> None:
    fill(journal_path)
    content = lines(journal_path)
    del content[22]
    journal_path.write_bytes(b"".join(content))
    result = verify_path(journal_path)
    assert not result.ok and result.position == 23 and result.code == "AUDIT_SEQUENCE"
    assert "supprimé" in result.message_fr


def test_swapped_records_fail_at_the_first(journal_path: Path) -> None:
    fill(journal_path)
    content = lines(journal_path)
    content[29], content[30] = content[30], content[29]
    journal_path.write_bytes(b"".join(content))
    result = verify_path(journal_path)
    assert not result.ok and result.position == 30


def test_a_cut_end_is_caught_with_the_last_known_hash(journal_path: Path) -> None:
    hashes = fill(journal_path)
    journal_path.write_bytes(b"".join(lines(journal_path)[:-3]))
    assert verify_path(journal_path).ok  # without a witness a cut end looks whole
    result = verify_path(journal_path, last_hash=hashes[-1])
    assert not result.ok and result.position == 48 and result.code == "AUDIT_TRUNCATED"
    assert "tronqué" in result.message_fr
    # a witness taken earlier stays valid as the journal grows
    assert verify_path(journal_path, last_hash=hashes[10]).ok


def test_the_pseudonym_is_keyed_and_the_ins_never_written(journal_path: Path) -> None:
    first = patient_pseudonym(INS, SECRET)
    assert first == patient_pseudonym(INS, SECRET)
    assert first != patient_pseudonym(INS, b"un-autre-secret-de-32-octets-xx")
    assert len(first) == 32 and INS not in first
    fill(journal_path, 5)
    assert INS.encode() not in journal_path.read_bytes()
    with AuditJournal.open(journal_path) as journal:
        with pytest.raises(AuditError) as not_pseudo:
            journal.append(actor="http", action=AuditAction.ENVOI, patient_pseudonym=INS)
        assert not_pseudo.value.code == "AUDIT_NOT_PSEUDONYM"
        with pytest.raises(AuditError) as in_detail:
            journal.append(actor="http", action=AuditAction.ENVOI, detail=f"INS {INS}")
        assert in_detail.value.code == "AUDIT_BAD_DETAIL"
    assert INS.encode() not in journal_path.read_bytes()
    assert verify_path(journal_path).ok


def test_purge_keeps_the_rest_verifiable(journal_path: Path) -> None:
    hashes = fill(journal_path)
    with AuditJournal.open(journal_path) as journal:
        head = journal.head_hash
        purged = journal.purge_before(T0 + timedelta(minutes=20), actor="operateur:admin")
        assert purged == 20
        assert journal.head_hash == head
        records = journal.records()
        assert len(records) == 31
        mark = records[0]
        assert mark.action is AuditAction.PURGE and mark.purged_count == 20
        assert mark.previous_hash == hashes[19] and mark.sequence == 20
        assert mark.actor == "operateur:admin"
        assert records[1].sequence == 21
        assert journal.verify(last_hash=hashes[-1]).ok
        assert journal.verify(anchor=hashes[19]).ok
        assert not journal.verify(anchor=hashes[18]).ok
        # appending and purging again keep it verifiable
        journal.append(
            actor="operateur:marie",
            action=AuditAction.RENVOI,
            job_id=7,
            at=T0 + timedelta(minutes=60),
        )
        assert journal.purge_before(T0 + timedelta(minutes=40)) == 20
        records = journal.records()
        assert records[0].purged_count == 20 and records[0].sequence == 40
        assert journal.verify().ok
        assert journal.purge_before(T0) == 0
    assert stat.S_IMODE(os.stat(journal_path).st_mode) == 0o600 or sys.platform == "win32"


def test_a_deleted_record_after_a_purge_is_caught(journal_path: Path) -> None:
    fill(journal_path, 10)
    with AuditJournal.open(journal_path) as journal:
        journal.purge_before(T0 + timedelta(minutes=4))
    content = lines(journal_path)
    del content[1]  # the first record after the checkpoint
    journal_path.write_bytes(b"".join(content))
    result = verify_path(journal_path)
    assert not result.ok and result.position == 2
    with AuditJournal.open(journal_path) as journal, pytest.raises(AuditError) as refused:
        journal.purge_before(T0 + timedelta(minutes=8))
    assert refused.value.code == "AUDIT_DAMAGED"


def test_purging_everything_keeps_the_chain(journal_path: Path) -> None:
    hashes = fill(journal_path, 5)
    with AuditJournal.open(journal_path) as journal:
        assert journal.purge_before(T0 + timedelta(days=1)) == 5
        assert journal.head_hash == hashes[-1]
    with AuditJournal.open(journal_path) as journal:
        record = journal.append(actor="dispatcher", action=AuditAction.RESULTAT)
        assert record.sequence == 6 and record.previous_hash == hashes[-1]
        assert journal.verify(last_hash=record.hash).ok


def test_a_purge_whose_replace_fails_leaves_the_journal_whole_and_writable(
    journal_path: Path,
) -> None:
    """Another program holding the file (Windows sharing violation): here a folder whose files
    cannot be renamed over (chattr +a), so the replace really fails."""
    hashes = fill(journal_path, 10)
    before = journal_path.read_bytes()
    with AuditJournal.open(journal_path) as journal:
        with attribute(journal_path.parent, "a"), pytest.raises(AuditError) as failed:
            journal.purge_before(T0 + timedelta(minutes=5))
        assert failed.value.code == "AUDIT_PURGE_FAILED"
        assert "retentée" in failed.value.message_fr
        assert journal_path.read_bytes() == before  # nothing lost, nothing half-done
        assert journal.head_hash == hashes[-1]
        record = journal.append(actor="dispatcher", action=AuditAction.RESULTAT, job_id=11)
        assert record.sequence == 11 and record.previous_hash == hashes[-1]
        assert journal.purge_before(T0 + timedelta(minutes=5)) == 5  # released: it goes through
        assert journal.verify(last_hash=record.hash).ok
    assert not (journal_path.parent / "audit.jsonl.tmp").exists()


def test_reopening_continues_the_chain(journal_path: Path) -> None:
    hashes = fill(journal_path, 3)
    with AuditJournal.open(journal_path) as journal:
        record = journal.append(actor="operateur:marie", action=AuditAction.LIBERATION, job_id=2)
    assert record.sequence == 4 and record.previous_hash == hashes[-1]
    assert record.at.tzinfo is not None
    assert verify_path(journal_path, last_hash=record.hash).ok


def test_the_file_is_owner_only(journal_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX modes")
    fill(journal_path, 1)
    assert stat.S_IMODE(os.stat(journal_path).st_mode) == 0o600


def test_a_torn_last_line_is_reported_at_its_position(journal_path: Path) -> None:
    fill(journal_path, 10)
    whole = journal_path.read_bytes()
    journal_path.write_bytes(whole + lines(journal_path)[-1][:40])  # died mid-write
    result = verify_path(journal_path)
    assert not result.ok and result.position == 11 and result.code == "AUDIT_TORN_TAIL"
    assert "incomplète" in result.message_fr
    # opening sets the fragment aside and the chain goes on
    with AuditJournal.open(journal_path) as journal:
        record = journal.append(actor="dispatcher", action=AuditAction.ENVOI)
    assert record.sequence == 11
    assert verify_path(journal_path).ok
    assert (journal_path.parent / "audit.jsonl.torn").exists()


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b"[" * 30_000 + b"]" * 30_000])
def test_a_rewritten_line_that_is_not_a_record_is_unreadable_not_a_crash(line: bytes) -> None:
    with pytest.raises(AuditError) as error:
        parse_line(line)
    assert error.value.code == "AUDIT_UNREADABLE"


def test_the_core_rules_without_a_file() -> None:
    first = chain(
        GENESIS_HASH, AuditFields(sequence=1, at=T0, actor="http", action=AuditAction.ENVOI)
    )
    assert parse_line(to_line(first)) == first
    assert verify([first]).ok
    assert not verify([first], anchor="1" * 64).ok
    with pytest.raises(AuditError):
        chain(
            GENESIS_HASH,
            AuditFields(sequence=1, at=datetime(2024, 1, 1), actor="x", action=AuditAction.ENVOI),
        )
