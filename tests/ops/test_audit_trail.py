"""The audit trail of an installation: what the service and the operator do is sealed in
`<data>/audit/journal.jsonl`, and `dmp-bridge audit verify` finds any tampering, naming the line
and what was done to it (edited, deleted, moved, cut at the end)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.audit import AuditAction, AuditError
from bridge.jobs import JobState
from service.audit_trail import AuditTrail
from tests.ops.conftest import CANARY_INS, T0, Installation, add_job
from tests.ops.file_attributes import attribute

DMP_BRIDGE = Path(sys.executable).with_name("dmp-bridge")
OPERATOR = f"operateur:{getpass.getuser()}"


def fill(installation: Installation, attempts: int = 10) -> None:
    """`attempts` sends, each followed by its outcome: 2 × `attempts` records."""
    with AuditTrail.for_config(installation.config) as trail:
        for n in range(1, attempts + 1):
            at = T0 + dt.timedelta(minutes=n)
            trail.attempt([n], f"1.2.250.1.999.7.{n}", "10101010101", CANARY_INS, "ITI-41", at=at)
            trail.outcome(n, JobState.DONE, "REGISTERED", document_unique_id=f"1.2.250.1.9.{n}",
                          at=at)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def verify(installation: Installation, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = installation.cli("audit", "verify")
    out = capsys.readouterr()
    return code, out.out + out.err


def records(installation: Installation) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines(installation.journal)]


# -- verification ----------------------------------------------------------------------------------


def test_an_intact_journal_verifies(installation: Installation,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    fill(installation)
    code, text = verify(installation, capsys)
    assert code == 0
    assert "Journal d'audit intègre : 20 enregistrements vérifiés" in text


def test_an_edited_record_is_named_with_its_line(installation: Installation,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fill(installation)
    content = lines(installation.journal)
    record = json.loads(content[6])
    record["outcome"] = "XDSRegistryError"  # someone rewrites a result
    content[6] = (json.dumps(record, sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False) + "\n").encode()
    installation.journal.write_bytes(b"".join(content))
    code, text = verify(installation, capsys)
    assert code == 1
    assert "ligne 7" in text and "MODIFIÉ" in text and "AUDIT_EDITED" in text


def test_a_deleted_record_is_named_with_its_line(installation: Installation,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fill(installation)
    content = lines(installation.journal)
    del content[4]
    installation.journal.write_bytes(b"".join(content))
    code, text = verify(installation, capsys)
    assert code == 1
    assert "ligne 5" in text and "SUPPRIMÉ" in text and "n°5 absent" in text


def test_two_swapped_records_are_named_as_moved(installation: Installation,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    fill(installation)
    content = lines(installation.journal)
    content[4], content[5] = content[5], content[4]
    installation.journal.write_bytes(b"".join(content))
    code, text = verify(installation, capsys)
    assert code == 1
    assert "DÉPLACÉ" in text
    assert "le n°5, attendu à la ligne 5, se trouve à la ligne 6" in text


def test_records_cut_from_the_end_are_caught_by_the_witness(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    fill(installation)
    content = lines(installation.journal)
    installation.journal.write_bytes(b"".join(content[:-2]))  # a valid chain, but shorter
    code, text = verify(installation, capsys)
    assert code == 1
    assert "SUPPRIMÉ(S) à la fin" in text and "AUDIT_TRUNCATED" in text


def test_a_purge_keeps_the_journal_verifiable(installation: Installation,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fill(installation)
    with AuditTrail.for_config(installation.config) as trail:
        assert trail.purge_before(T0 + dt.timedelta(minutes=5, seconds=30)) == 10
        trail.outcome(99, JobState.DEAD, "XDSRegistryError")
    code, text = verify(installation, capsys)
    assert code == 0, text
    assert records(installation)[0]["action"] == "purge"
    assert len(records(installation)) == 1 + 10 + 1


def test_a_purge_that_cannot_replace_the_file_keeps_the_trail_writable(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    """The journal is locked away by another program during the purge (chattr +i: it can be
    neither replaced nor reopened for writing); once released, writes go on without a restart."""
    fill(installation, 5)
    with AuditTrail.for_config(installation.config) as trail:
        trail.outcome(1, JobState.DONE, "REGISTERED")  # the trail holds the journal open
        with attribute(installation.journal, "i"), pytest.raises(AuditError) as failed:
            trail.purge_before(T0 + dt.timedelta(minutes=3, seconds=30))
        assert failed.value.code == "AUDIT_PURGE_FAILED"
        assert len(records(installation)) == 11  # untouched
        record = trail.outcome(2, JobState.DONE, "REGISTERED")
        assert record.sequence == 12
        assert trail.purge_before(T0 + dt.timedelta(minutes=3, seconds=30)) == 6
        trail.outcome(3, JobState.DONE, "REGISTERED")
    code, text = verify(installation, capsys)
    assert code == 0, text
    assert [r["sequence"] for r in records(installation)][-2:] == [12, 13]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("room", [0, 20], ids=["full-at-the-record", "full-inside-the-record"])
def test_a_write_that_fails_for_lack_of_room_does_not_need_a_restart(
        installation: Installation, capsys: pytest.CaptureFixture[str], room: int) -> None:
    """A full disk, for real: the file size limit (RLIMIT_FSIZE) stops the write at the start
    of the record or in its middle (Python ignores SIGXFSZ, the write fails with EFBIG)."""
    import resource

    fill(installation, 2)
    with AuditTrail.for_config(installation.config) as trail:
        trail.outcome(1, JobState.DONE, "REGISTERED")
        witness = trail.witness()
        size = installation.journal.stat().st_size
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + room, hard))
        try:
            with pytest.raises(AuditError) as full:
                trail.outcome(2, JobState.DONE, "REGISTERED")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert full.value.code == "AUDIT_WRITE_FAILED"
        assert installation.journal.stat().st_size == size + room  # a torn fragment, or none
        assert trail.witness() == witness
        record = trail.outcome(2, JobState.DONE, "REGISTERED")  # room again
    assert record.sequence == 6
    code, text = verify(installation, capsys)
    assert code == 0, text
    torn = installation.journal.with_name("journal.jsonl.torn")
    assert (torn.stat().st_size if torn.exists() else 0) == (room + 1 if room else 0)


# -- what is recorded ------------------------------------------------------------------------------


def test_an_attempt_records_the_author_and_a_pseudonym_never_the_ins(
        installation: Installation) -> None:
    with AuditTrail.for_config(installation.config) as trail:
        trail.attempt([7, 5, 6], "1.2.250.1.999.7.1", "10101010101", CANARY_INS, "ITI-41")
        trail.outcome(5, JobState.DEFERRED, "DMP_INDISPONIBLE")
    with AuditTrail.for_config(installation.config) as again:  # same secret, same pseudonym
        again.attempt([8], "1.2.250.1.999.7.2", "10101010101", CANARY_INS, "ITI-41")
    first, outcome, second = records(installation)
    assert first["action"] == "envoi" and first["actor"] == "dispatcher"
    assert first["job_id"] == 5 and first["document_unique_id"] == "1.2.250.1.999.7.1"
    assert first["detail"] == "ITI-41 ; auteur RPPS 10101010101 ; lot n° 5, 6, 7"
    assert first["patient_pseudonym"] == second["patient_pseudonym"]
    assert outcome["outcome"] == "DMP_INDISPONIBLE"
    assert str(outcome["detail"]).startswith("état deferred")
    audit_dir = installation.journal.parent
    assert CANARY_INS.encode() not in b"".join(p.read_bytes() for p in audit_dir.iterdir())
    if os.name == "posix":
        for name in ("secret-pseudonymes", "journal.jsonl", "dernier-sceau"):
            assert stat.S_IMODE((audit_dir / name).stat().st_mode) == 0o600, name


@pytest.mark.parametrize(
    ("command", "start", "end", "action"),
    [
        ("release", JobState.HELD, JobState.QUEUED, "liberation"),
        ("cancel", JobState.HELD, JobState.DEAD, "annulation"),
        ("replay", JobState.DEAD, JobState.QUEUED, "renvoi"),
        ("retry", JobState.DEFERRED, JobState.QUEUED, "renvoi"),
        ("retry", JobState.DEAD, JobState.QUEUED, "renvoi"),
    ],
)
def test_an_operator_action_records_who_when_which_document_and_the_result(
        installation: Installation, command: str, start: JobState, end: JobState,
        action: str) -> None:
    with installation.store() as store:
        job = add_job(store, 1, start)
    before = dt.datetime.now(dt.UTC)
    assert installation.cli(command, str(job.id)) == 0
    with installation.store() as store:
        assert store.get(job.id).state is end  # type: ignore[union-attr]
    [record] = records(installation)
    assert record["actor"] == OPERATOR and record["action"] == action
    assert record["job_id"] == job.id and record["outcome"] == "ok"
    assert f"{start.value} → {end.value}" in str(record["detail"])
    at = dt.datetime.fromisoformat(str(record["at"]))
    assert before - dt.timedelta(seconds=1) <= at <= dt.datetime.now(dt.UTC)


def test_a_refused_operator_action_is_recorded_with_why(installation: Installation,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with installation.store() as store:
        job = add_job(store, 1, JobState.QUEUED)
    assert installation.cli("release", str(job.id)) == 1
    assert installation.cli("retry", str(job.id)) == 1
    assert installation.cli("cancel", "404") == 1
    assert "rien à faire" in capsys.readouterr().err
    outcomes = [(r["action"], r["job_id"], r["outcome"]) for r in records(installation)]
    assert outcomes == [("liberation", job.id, "NOT_HELD"), ("renvoi", job.id, "NOT_DEFERRED"),
                        ("annulation", 404, "UNKNOWN_JOB")]


def test_a_retried_deferred_document_goes_back_to_the_queue_now(
        installation: Installation) -> None:
    with installation.store() as store:
        job = add_job(store, 1, JobState.DEFERRED, code="AWAITING_CREDENTIALS")
        assert store.claim(T0 + dt.timedelta(minutes=2), dt.timedelta(minutes=5)) is None
    assert installation.cli("retry", str(job.id)) == 0
    with installation.store() as store:
        claimed = store.claim(T0 + dt.timedelta(minutes=2), dt.timedelta(minutes=5))
        codes = [event.code for event in store.events(job.id)]
    assert claimed is not None and claimed.id == job.id  # due at once
    assert codes[-3:] == ["RETRIED_BY_USER", "RETRIED_BY_USER", "CLAIMED"]


def test_a_deferred_document_of_a_lot_is_not_retried_alone(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    with installation.store() as store:
        first = add_job(store, 1, JobState.DEFERRED, code="DMP_DOWN")
        second = add_job(store, 2, JobState.DEFERRED, code="DMP_DOWN")
        for job in (first, second):  # one package for both: the lot's submission set
            store.save_package(job.id, f"1.2.250.1.999.9.{job.id}", "1.2.250.1.999.8.1",
                               b"<lot/>")
    assert installation.cli("retry", str(first.id)) == 1
    assert f"fait partie d'un lot avec le document n° {second.id}" in capsys.readouterr().err
    with installation.store() as store:
        assert store.get(first.id).state is JobState.DEFERRED  # type: ignore[union-attr]
    [record] = records(installation)
    assert (record["action"], record["job_id"], record["outcome"]) == (
        "renvoi", first.id, "LOT_PARTNER_WAITING")
    assert record["document_unique_id"] == f"1.2.250.1.999.9.{first.id}"


def test_an_action_the_journal_cannot_record_stands_and_the_command_fails(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    with installation.store() as store:
        job = add_job(store, 1, JobState.HELD)
    installation.journal.parent.parent.mkdir(parents=True, exist_ok=True)
    installation.journal.parent.write_text("pas un dossier", encoding="utf-8")
    assert installation.cli("release", str(job.id)) == 1
    out = capsys.readouterr()
    assert f"Document n° {job.id} : libéré par l'utilisateur" in out.out
    assert "l'action n'a pas pu être inscrite au journal d'audit" in out.err
    assert "dmp-bridge doctor" in out.err
    with installation.store() as store:
        assert store.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]


def test_the_service_and_an_operator_command_in_another_process_keep_one_chain(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    with installation.store() as store:
        held = add_job(store, 1, JobState.HELD)
    with AuditTrail.for_config(installation.config) as service:  # stays open, like the service
        service.attempt([2], "1.2.250.1.999.7.2", "10101010101", CANARY_INS)
        released = subprocess.run(
            [str(DMP_BRIDGE), "release", str(held.id), "--config", str(installation.config_path)],
            capture_output=True, text=True, timeout=60, check=False)
        assert released.returncode == 0, released.stderr
        service.outcome(2, JobState.DONE, "REGISTERED")
    assert [r["action"] for r in records(installation)] == ["envoi", "liberation", "resultat"]
    assert [r["sequence"] for r in records(installation)] == [1, 2, 3]
    code, text = verify(installation, capsys)
    assert code == 0, text


def test_the_witness_is_the_head_hash_after_each_record(installation: Installation) -> None:
    with AuditTrail.for_config(installation.config) as trail:
        record = trail.operator_action("operateur:test", AuditAction.RENVOI, 3, "ok")
    assert record.sequence == 1 and trail.witness() == record.hash
