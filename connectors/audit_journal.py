"""The audit journal in one append-only JSON-lines file (rules in `bridge.audit`).

Durability: each record is one canonical line written with a single `O_APPEND` descriptor, then
`os.fsync` before `append` returns; a record `append` returned survives a crash or a power loss.
One `threading.Lock` serializes writers inside the process; the file belongs to one process
(the service), so no OS-level lock is needed (and none is portable).

Torn tail (the process died in the middle of a write): the fragment after the last newline was
never acknowledged, so it is not a record. `verify_path` (what `dmp-bridge audit verify` runs,
read-only) reports it as `AUDIT_TORN_TAIL` at its line, after checking that every earlier record
is intact; it is not reported as tampering. `AuditJournal.open` repairs it before appending: the
fragment is copied to `<name>.torn` (kept for inspection) and the file cut back to its last
newline, so new records never glue onto it.

The file is created 0600 (owner only) where the OS supports modes. Nothing here logs: the
journal holds pseudonyms and document ids, and the caller logs outcomes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from bridge.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditError,
    AuditFields,
    AuditRecord,
    VerificationResult,
    chain,
    checkpoint,
    failure,
    parse_line,
    purge_split,
    to_line,
    verify,
)

_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (newline stripped) and the torn fragment after the last newline."""
    *lines, tail = data.split(b"\n")
    return lines, tail


def _parse_all(lines: list[bytes]) -> tuple[list[AuditRecord], int | None]:
    """Records up to the first unreadable line, and that line's 1-based position (or None)."""
    records: list[AuditRecord] = []
    for position, line in enumerate(lines, start=1):
        try:
            records.append(parse_line(line + b"\n"))
        except AuditError:
            return records, position
    return records, None


def _fsync_dir(directory: Path) -> None:
    # A new or replaced file's name is durable once its directory is synced (POSIX); on
    # Windows a directory cannot be opened, and NTFS journals the rename itself.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def verify_path(
    path: Path, *, anchor: str | None = None, last_hash: str | None = None
) -> VerificationResult:
    """Verify a journal file without changing it (see `bridge.audit.verify`)."""
    data = Path(path).read_bytes() if Path(path).exists() else b""
    lines, tail = _split(data)
    records, unreadable = _parse_all(lines)
    total = len(lines) + (1 if tail else 0)
    result = verify(
        records, anchor=anchor, last_hash=last_hash if unreadable is None and not tail else None
    )
    if not result.ok:
        return result
    if unreadable is not None:
        return failure(
            unreadable,
            total,
            "AUDIT_EDITED",
            f"Journal d'audit altéré : la ligne {unreadable} est illisible ou a été réécrite.",
        )
    if tail:
        return failure(
            len(lines) + 1,
            total,
            "AUDIT_TORN_TAIL",
            f"La dernière ligne du journal d'audit (ligne {len(lines) + 1}) est "
            "incomplète : écriture interrompue par un arrêt brutal. Les "
            "enregistrements précédents sont intacts ; elle sera écartée à la "
            "prochaine ouverture.",
        )
    return result


class AuditJournal:
    """The audit journal file. Open with `AuditJournal.open(path)`."""

    def __init__(
        self, path: Path, fd: int, last: AuditRecord | None, clock: Callable[[], datetime]
    ) -> None:
        self.path = path
        self._fd = fd
        self._last = last
        self._clock = clock
        self._lock = threading.Lock()
        self._failed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], datetime] = _utc_now) -> AuditJournal:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not path.exists()
        data = b"" if created else path.read_bytes()
        lines, tail = _split(data)
        if tail:
            cls._set_torn_tail_aside(path, tail, keep=len(data) - len(tail))
        last: AuditRecord | None = None
        if lines:
            try:
                last = parse_line(lines[-1] + b"\n")
            except AuditError as exc:
                raise AuditError(
                    f"Le journal d'audit {path.name} est endommagé (dernière ligne illisible) : "
                    "lancez « dmp-bridge audit verify » et restaurez la sauvegarde.",
                    code="AUDIT_DAMAGED",
                ) from exc
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _BINARY, 0o600)
        with contextlib.suppress(OSError):  # on Windows chmod only toggles read-only
            os.chmod(path, 0o600)
        if created:
            _fsync_dir(path.parent)
        return cls(path, fd, last, clock)

    @staticmethod
    def _set_torn_tail_aside(path: Path, tail: bytes, *, keep: int) -> None:
        # Copy first, then cut: dying between the two leaves the fragment in both places,
        # and the next open does it again. Nothing acknowledged is ever lost.
        aside = path.with_name(path.name + ".torn")
        fd = os.open(aside, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _BINARY, 0o600)
        try:
            _write_all(fd, tail + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        with open(path, "r+b") as file:
            file.truncate(keep)
            file.flush()
            os.fsync(file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------

    @property
    def head_hash(self) -> str:
        """The hash the next record will link to; witness it elsewhere to detect a cut end."""
        return GENESIS_HASH if self._last is None else self._last.link

    def records(self) -> list[AuditRecord]:
        with self._lock:
            return self._read_records()

    def _read_records(self) -> list[AuditRecord]:
        lines, _tail = _split(self.path.read_bytes())
        records, unreadable = _parse_all(lines)
        if unreadable is not None:
            raise AuditError(
                f"Le journal d'audit est endommagé à la ligne {unreadable}.", code="AUDIT_DAMAGED"
            )
        return records

    def verify(
        self, *, anchor: str | None = None, last_hash: str | None = None
    ) -> VerificationResult:
        with self._lock:
            return verify_path(self.path, anchor=anchor, last_hash=last_hash)

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        *,
        actor: str,
        action: AuditAction,
        job_id: int | None = None,
        document_unique_id: str | None = None,
        patient_pseudonym: str | None = None,
        outcome: str = "ok",
        detail: str = "",
        at: datetime | None = None,
    ) -> AuditRecord:
        """Seal and write one record; it is on disk when this returns."""
        if action is AuditAction.PURGE:
            raise AuditError(
                "Un point de purge n'est écrit que par la purge.", code="AUDIT_BAD_CHECKPOINT"
            )
        with self._lock:
            if self._failed or self._fd < 0:
                raise AuditError(
                    "Le journal d'audit n'est plus utilisable (écriture échouée "
                    "ou fermé) : redémarrez le service.",
                    code="AUDIT_UNAVAILABLE",
                )
            fields = AuditFields(
                sequence=1 if self._last is None else self._last.sequence + 1,
                at=self._clock() if at is None else at,
                actor=actor,
                action=action,
                job_id=job_id,
                document_unique_id=document_unique_id,
                patient_pseudonym=patient_pseudonym,
                outcome=outcome,
                detail=detail,
            )
            record = chain(self.head_hash, fields)
            try:
                _write_all(self._fd, to_line(record))
                os.fsync(self._fd)  # the record exists from here on
            except OSError as exc:
                # A part of the line may be on disk: no record may follow it in this process.
                # Reopening (restart) sets the fragment aside.
                self._failed = True
                raise AuditError(
                    "Écriture impossible dans le journal d'audit (disque plein ?) "
                    ": les envois sont suspendus.",
                    code="AUDIT_WRITE_FAILED",
                ) from exc
            self._last = record
            return record

    def purge_before(
        self, before: datetime, *, actor: str = "purge", at: datetime | None = None
    ) -> int:
        """Drop the records older than `before` behind a checkpoint; return how many went.

        Refused on a journal that does not verify: a purge must never hide tampering. The file
        is replaced atomically (temp file, fsync, `os.replace`): a crash leaves the old file or
        the new one, both verifiable. The handle is closed for the replace (Windows cannot
        replace an open file) and reopened whatever happens: a replace that fails (another
        program has the file open) raises `AUDIT_PURGE_FAILED` and leaves the journal as it
        was, still open for appending.
        """
        with self._lock:
            if self._fd < 0:
                raise AuditError("Le journal d'audit est fermé.", code="AUDIT_UNAVAILABLE")
            result = verify_path(self.path)
            if not result.ok:
                raise AuditError(
                    "Purge refusée : le journal d'audit n'est pas intègre. " + result.message_fr,
                    code="AUDIT_DAMAGED",
                )
            records = self._read_records()
            cut = purge_split(records, before)
            removed = records[:cut]
            purged = sum(1 for record in removed if not record.is_checkpoint)
            if purged == 0:
                return 0
            mark = checkpoint(
                removed[-1],
                purged_count=purged,
                at=self._clock() if at is None else at,
                actor=actor,
            )
            content = b"".join(to_line(record) for record in [mark, *records[cut:]])
            temp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _BINARY, 0o600)
            try:
                _write_all(fd, content)
                os.fsync(fd)  # the new content is durable before it takes the name
            finally:
                os.close(fd)
            os.close(self._fd)  # Windows cannot replace an open file
            self._fd = -1
            replaced = False
            try:
                os.replace(temp, self.path)
                replaced = True
            except OSError as exc:
                # Windows: another program (antivirus, backup) has the file open. The journal
                # stays as it was, whole; the purge is tried again at the next pass.
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise AuditError(
                    "Purge du journal d'audit impossible : le fichier est ouvert par un autre "
                    "programme (sauvegarde, antivirus ?) ou protégé. Le journal est gardé tel "
                    "quel ; la purge sera retentée au prochain passage.",
                    code="AUDIT_PURGE_FAILED",
                ) from exc
            finally:
                # Whatever happened, appends go on. When the replace failed, its error is the
                # one to report (a journal that stays closed says AUDIT_UNAVAILABLE later).
                reopened = self._reopen()
                if replaced and not reopened:
                    raise AuditError(
                        "Le journal d'audit n'a pas pu être rouvert après la purge (fichier "
                        "verrouillé par un autre programme ?) : rien ne peut y être inscrit "
                        "tant qu'il n'est pas libéré.",
                        code="AUDIT_UNAVAILABLE",
                    )
            _fsync_dir(self.path.parent)
            if cut == len(records):
                self._last = mark  # same link as before: the head hash does not change
            return purged

    def _reopen(self) -> bool:
        """Reopen for appending after a purge (replaced or not); False if it cannot."""
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | _BINARY)
        except OSError:
            return False
        return True
