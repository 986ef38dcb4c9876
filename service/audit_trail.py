"""The audit trail: what the service and the operator do, written to the audit journal.

Glue between the service's events and `connectors.audit_journal` (rules in `bridge.audit`):

- `attempt(...)`: one record per submission attempt to the DMP (action `envoi`): the jobs sent
  together, the submission set's uniqueId (in the record's `document_unique_id`: it names what
  left), the author's RPPS and the transaction in the detail, the patient as a pseudonym;
- `outcome(...)`: one record per job outcome (action `resultat`): `ok` when the job is done,
  else the error code, the new state in the detail;
- `operator_action(...)`: a person's release, replay, retry or cancel (who, which job, result).

Files, in `<data_dir>/audit/` (owner-only, 0700 folder, 0600 files):
- `journal.jsonl`: the journal;
- `secret-pseudonymes`: 32 random bytes, the HMAC key of patient pseudonyms, created at the
  first use; lose it and the same patient gets new pseudonyms (old ones stay valid records);
- `dernier-sceau`: the head hash after the last append (a witness): `verify` then also detects
  records cut from the END of the journal, which the chain alone cannot;
- `journal.lock`: an OS lock file. The journal belongs to the service, but `dmp-bridge release`
  (and the other operator commands) append from their own process while the service may be
  running. Every append takes this inter-process lock and reopens the journal if another
  process wrote to it since (size, inode or mtime changed), so the chain stays one chain.

A write or a purge that fails drops the cached journal: the next call reopens it (setting a
torn fragment aside), so once the cause is gone (disk freed, file released by a backup or an
antivirus) the service writes again without a restart.

Nothing here logs: the journal holds pseudonyms and document ids; callers log outcomes.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import secrets
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

from bridge.audit import (
    AuditAction,
    AuditError,
    AuditRecord,
    VerificationResult,
    patient_pseudonym,
)
from bridge.jobs import JobState
from connectors.audit_journal import AuditJournal, verify_path
from service.config import BridgeConfig

AUDIT_DIR = "audit"
JOURNAL_NAME = "journal.jsonl"
SECRET_NAME = "secret-pseudonymes"  # noqa: S105 (a file name, not a secret)
WITNESS_NAME = "dernier-sceau"
LOCK_NAME = "journal.lock"
SECRET_BYTES = 32
DISPATCHER_ACTOR = "dispatcher"
_BINARY = getattr(os, "O_BINARY", 0)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_IDS_TEXT = 120  # the job numbers of a lot in a detail (bridge.audit.MAX_DETAIL is 200)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def audit_dir(config: BridgeConfig) -> Path:
    return config.path(config.bridge.data_dir) / AUDIT_DIR


def operator_actor() -> str:
    """`operateur:<login>`: the OS account that typed the command."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers, services)
        login = "inconnu"
    return f"operateur:{login}"


def _lock_file(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        while True:  # LK_LOCK gives up after ~10 s; an operator command may wait longer
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:
                continue
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock_file(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def _write_private(path: Path, data: bytes) -> None:
    """Temp file (0600), fsync, rename: the file has the old content or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _BINARY, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _ids_text(job_ids: Sequence[int]) -> str:
    text = ", ".join(str(job_id) for job_id in job_ids)
    if len(text) > _MAX_IDS_TEXT:
        text = text[: _MAX_IDS_TEXT - 1].rsplit(",", 1)[0] + ", …"
    return text


class AuditTrail:
    """The journal of one installation. Safe to share between threads and processes."""

    def __init__(self, directory: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.directory = Path(directory)
        self.journal_path = self.directory / JOURNAL_NAME
        self.witness_path = self.directory / WITNESS_NAME
        self._clock = clock
        self._journal: AuditJournal | None = None
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime) after our write
        self._secret: bytes | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: BridgeConfig) -> AuditTrail:
        return cls(audit_dir(config))

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the service and the operator commands call --------------------------------------

    def attempt(
        self,
        job_ids: Sequence[int],
        submission_id: str,
        author_rpps: str,
        patient_ins_matricule: str,
        transaction: str = "ITI-41",
        *,
        at: datetime | None = None,
    ) -> AuditRecord:
        """One submission attempt (a lot is one attempt). Call it just BEFORE the jobs'
        `Store.mark_sent`: if the journal cannot be written (AuditError), nothing has left yet
        and the dispatcher can pause (environment error) without an unrecorded send."""
        if not job_ids:
            raise ValueError("an attempt sends at least one job")
        ordered = sorted(job_ids)
        documents = f"lot n° {_ids_text(ordered)}" if len(ordered) > 1 else "1 document"
        with self._guard():
            pseudonym = patient_pseudonym(patient_ins_matricule, self._pseudonym_secret())
            return self._append(
                actor=DISPATCHER_ACTOR,
                action=AuditAction.ENVOI,
                job_id=ordered[0],
                document_unique_id=submission_id,
                patient_pseudonym=pseudonym,
                outcome="ok",
                detail=f"{transaction} ; auteur RPPS {author_rpps} ; {documents}",
                at=at,
            )

    def outcome(
        self,
        job_id: int,
        state: JobState,
        code: str,
        *,
        document_unique_id: str | None = None,
        at: datetime | None = None,
    ) -> AuditRecord:
        """The result of an attempt for one job (or of an ambiguity resolved): `ok` when it is
        done, else the error code."""
        with self._guard():
            return self._append(
                actor=DISPATCHER_ACTOR,
                action=AuditAction.RESULTAT,
                job_id=job_id,
                document_unique_id=document_unique_id,
                outcome="ok" if state is JobState.DONE else code,
                detail=f"état {state.value} ({code})",
                at=at,
            )

    def operator_action(
        self,
        actor: str,
        action: AuditAction,
        job_id: int | None,
        result: str,
        *,
        document_unique_id: str | None = None,
        detail: str = "",
        at: datetime | None = None,
    ) -> AuditRecord:
        """A person acted on a job (`result`: "ok" or the code of why nothing was done)."""
        with self._guard():
            return self._append(
                actor=actor,
                action=action,
                job_id=job_id,
                document_unique_id=document_unique_id,
                outcome=result,
                detail=detail,
                at=at,
            )

    def purge_before(self, before: datetime, *, at: datetime | None = None) -> int:
        """Retention: the records older than `before` leave, behind one checkpoint; the rest
        still verifies (and the witness stays valid: a purge keeps the head hash)."""
        with self._guard():
            journal = self._open()
            try:
                purged = journal.purge_before(before, actor="retention", at=at)
            except BaseException:
                self._drop()  # whatever state the failure left it in, the next call reopens
                raise
            self._seen = self._stat()
            return purged

    def verify(self) -> VerificationResult:
        """Check the whole journal (read-only), against the witness when there is one.

        No lock: the witness is read BEFORE the journal, and a writer updates it only after its
        record is on disk, so the journal read is never older than the witness."""
        witness = self.witness()
        return verify_path(self.journal_path, last_hash=witness)

    def witness(self) -> str | None:
        try:
            text = self.witness_path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text if _HEX64.fullmatch(text) else None

    def records(self) -> list[AuditRecord]:
        """Every record, oldest first (for the dashboard's audit page)."""
        with self._guard():
            return self._open().records()

    # -- internals ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """This process's threads, then the other processes (the operator's commands)."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | _BINARY, 0o600)
            try:
                _lock_file(fd)
                try:
                    yield
                finally:
                    _unlock_file(fd)
            finally:
                os.close(fd)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self.journal_path.stat()
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns

    def _open(self) -> AuditJournal:
        """The journal, reopened if another process appended (or purged) since our last write:
        our idea of the last record would be stale and the next record would break the chain."""
        if self._journal is not None and self._stat() != self._seen:
            self._journal.close()
            self._journal = None
        if self._journal is None:
            self._journal = AuditJournal.open(self.journal_path, clock=self._clock)
            self._seen = self._stat()
        return self._journal

    def _drop(self) -> None:
        """Forget the cached journal (after a failure); the next call opens it afresh."""
        if self._journal is not None:
            with contextlib.suppress(OSError):
                self._journal.close()
            self._journal = None
            self._seen = None

    def _append(
        self,
        *,
        actor: str,
        action: AuditAction,
        job_id: int | None,
        document_unique_id: str | None,
        outcome: str,
        detail: str,
        at: datetime | None,
        patient_pseudonym: str | None = None,
    ) -> AuditRecord:
        journal = self._open()
        try:
            record = journal.append(
                actor=actor, action=action, job_id=job_id, document_unique_id=document_unique_id,
                patient_pseudonym=patient_pseudonym, outcome=outcome, detail=detail, at=at,
            )
        except BaseException:
            # A failed write leaves the journal refusing appends (a fragment may be on disk):
            # the next call reopens it, which sets the fragment aside, as a restart would.
            self._drop()
            raise
        self._seen = self._stat()
        # After the record is durable: dying here leaves an older witness, still in the chain.
        _write_private(self.witness_path, (journal.head_hash + "\n").encode("ascii"))
        return record

    def _pseudonym_secret(self) -> bytes:
        if self._secret is not None:
            return self._secret
        path = self.directory / SECRET_NAME
        if not path.exists():  # under the inter-process lock: one process creates it
            _write_private(path, secrets.token_bytes(SECRET_BYTES))
        secret = path.read_bytes()
        if len(secret) < SECRET_BYTES:
            raise AuditError(
                f"Le secret de pseudonymisation du journal d'audit ({path}) est abîmé : "
                "restaurez-le depuis la sauvegarde du dossier des données.",
                code="AUDIT_WEAK_SECRET",
            )
        self._secret = secret
        return secret


def retention_cutoff(now: datetime, days: int) -> datetime:
    """The `before` of `purge_before` for a retention of `days`."""
    return now - timedelta(days=days)
