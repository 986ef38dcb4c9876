"""The durable queue, as the core sees it (DESIGN.md §3–4).

Methods are synchronous: the service calls them from a worker thread (`asyncio.to_thread`).
Implementations commit before returning from every method that writes; a method that returned
has made its change durable. All datetimes are timezone-aware (UTC).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from bridge.errors import BridgeError
from bridge.jobs import Intake, Job, JobEvent, JobState


class StoreError(BridgeError):
    """Root of the errors a store raises on purpose."""

    code = "STORE_ERROR"
    event = "store_error"


class UnknownJob(StoreError):
    """No job has this id."""

    code = "UNKNOWN_JOB"
    event = "store_unknown_job"

    def __init__(self, job_id: int) -> None:
        super().__init__(f"Document introuvable dans la file d'attente (n° {job_id}).")
        self.job_id = job_id


class JobNotActive(StoreError):
    """An operation that needs the job to be leased (active) was called on another state."""

    code = "JOB_NOT_ACTIVE"
    event = "store_job_not_active"

    def __init__(self, job_id: int, state: JobState) -> None:
        super().__init__(f"Le document n° {job_id} n'est pas en cours de traitement ({state}).")
        self.job_id = job_id
        self.state = state


class CorruptPayload(StoreError):
    """Stored bytes no longer match the hash recorded when they were stored."""

    code = "CORRUPT_PAYLOAD"
    event = "store_corrupt_payload"

    def __init__(self, job_id: int, what: str = "payload") -> None:
        super().__init__(
            f"Le contenu enregistré du document n° {job_id} est altéré ({what}) : "
            "il ne correspond plus à son empreinte. Renvoyez le document depuis le logiciel."
        )
        self.job_id = job_id
        self.what = what


class PayloadPurged(StoreError):
    """The bytes of a `done` job were purged after the retention period (its row remains)."""

    code = "PAYLOAD_PURGED"
    event = "store_payload_purged"

    def __init__(self, job_id: int) -> None:
        super().__init__(
            f"Le contenu du document n° {job_id} a été effacé à la fin de sa durée de "
            "conservation (le document est enregistré dans le DMP ; son historique est gardé)."
        )
        self.job_id = job_id


class Store(Protocol):
    """The queue of jobs, their bytes and their timelines."""

    def close(self) -> None: ...

    def enqueue(self, intake: Intake) -> tuple[Job, bool]:
        """Store a new job (True), or return the one already known for its key (False).

        Durable on return: only then may the source be acknowledged.
        """
        ...

    def claim(self, now: datetime, lease: timedelta) -> Job | None:
        """Lease the oldest queued job, or deferred job now due; None when there is none."""
        ...

    def claim_related(self, job: Job, now: datetime, lease: timedelta, limit: int) -> list[Job]:
        """Lease up to `limit` more jobs that must travel with the leased (ACTIVE) `job`.

        - `job` was packaged (it has a submission uniqueId): the QUEUED or DEFERRED jobs that
          share its package (same submission uniqueId), due or not: one send answers for all.
        - `job` was never packaged: the QUEUED jobs with the same patient and author keys that
          were never packaged either (no document uniqueId), oldest first. A job that was
          packaged keeps its bytes forever, so it never joins a new lot.

        Raises `JobNotActive` if `job` is not leased. PostgreSQL skips rows locked by others.
        """
        ...

    def payload(self, job_id: int) -> bytes:
        """The document as received; raises `CorruptPayload` if its hash no longer matches,
        `PayloadPurged` if it was purged after the retention period."""
        ...

    def metadata(self, job_id: int) -> bytes: ...

    def save_package(
        self, job_id: int, document_unique_id: str, submission_unique_id: str, package: bytes
    ) -> None:
        """Keep the signed bytes to (re)send; the first package saved wins, ids never change."""
        ...

    def package(self, job_id: int) -> bytes | None: ...

    def discard_refused_package(
        self, job_id: int, submission_unique_id: str, *, now: datetime
    ) -> bool:
        """Forget the package of a leased job whose submission set the DMP did NOT register
        (it refused it as a whole, or never accepted it: the job was queued or deferred), so
        the document can be resent alone in a new submission set.

        Only the package bytes and the submission uniqueId go; the document uniqueId stays (the
        new package must reuse it, with the same CDA bytes). Nothing happens (False) when the
        job's package is not that submission's any more. Journaled; clears the "sent" mark of the
        lease (nothing of this lease can be in the DMP). Raises `JobNotActive` if not leased.
        """
        ...

    def note(self, job_id: int, *, code: str, message_fr: str, now: datetime) -> None:
        """Add a line to the job's timeline without changing its state (e.g. an alert sent)."""
        ...

    def purge_done(self, before: datetime, *, now: datetime) -> int:
        """Purge payload, metadata and package bytes of the jobs DONE before `before`.

        The job row (with its hashes and uniqueIds) and its timeline stay, so the conservation
        invariant and the history hold; reading the bytes then raises `PayloadPurged`.
        Returns how many jobs were purged (each once; journaled).
        """
        ...

    def mark_sent(self, job_id: int) -> None:
        """Record that the request is leaving: a crash from here on means AMBIGUOUS."""
        ...

    def transition(
        self,
        job_id: int,
        new: JobState,
        *,
        code: str,
        message_fr: str,
        now: datetime,
        next_attempt_at: datetime | None = None,
        count_attempt: bool = False,
        lease: timedelta | None = None,
        expected: JobState | None = None,
    ) -> Job:
        """The one way to change a job's state (checked by `check_transition`, journaled).

        `expected`: the state the caller read; if the job has moved since (another worker, the
        service while a person acts), StateChanged is raised and nothing changes — checked in
        the same transaction as the change."""
        ...

    def recover_on_start(self, now: datetime) -> int:
        """Put every ACTIVE job back to QUEUED (or AMBIGUOUS if it may have been sent)."""
        ...

    def get(self, job_id: int) -> Job | None: ...

    def find_by_key(self, idempotency_key: str) -> Job | None: ...

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """The most recent jobs first (optionally of one state)."""
        ...

    def events(self, job_id: int) -> list[JobEvent]: ...

    def counts(self) -> dict[JobState, int]: ...

    def received(self) -> int: ...

    def tally(self) -> tuple[dict[JobState, int], int]:
        """Counts per state and jobs ever received, read together: `(counts(), received())`
        from one consistent snapshot, so no intake committed meanwhile (by this process or
        another) falls between them. Check the conservation invariant on this, never on two
        separate reads: those make a healthy queue look unbalanced while documents arrive."""
        ...
