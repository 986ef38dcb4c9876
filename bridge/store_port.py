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

    def payload(self, job_id: int) -> bytes:
        """The document as received; raises `CorruptPayload` if its hash no longer matches."""
        ...

    def metadata(self, job_id: int) -> bytes: ...

    def save_package(
        self, job_id: int, document_unique_id: str, submission_unique_id: str, package: bytes
    ) -> None:
        """Keep the signed bytes to (re)send; the first package saved wins, ids never change."""
        ...

    def package(self, job_id: int) -> bytes | None: ...

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
    ) -> Job:
        """The one way to change a job's state (checked by `check_transition`, journaled)."""
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
