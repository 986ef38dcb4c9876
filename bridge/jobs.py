"""The job: one received document on its way to the DMP, and the states it may go through.

Pure values and rules (DESIGN.md §4). The store applies them; nothing here touches a file or a
clock. `check_transition` is the one gate every state change goes through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from bridge.errors import BridgeError


class JobState(StrEnum):
    """Where a job is in the queue (DESIGN.md §4)."""

    QUEUED = "queued"  # committed, ready to process
    ACTIVE = "active"  # leased by one worker; back to queued (or ambiguous if sent) on restart
    DEFERRED = "deferred"  # transient failure; retried once next_attempt_at has passed
    AMBIGUOUS = "ambiguous"  # request sent, outcome unknown; ask the DMP (ITI-18) before resending
    HELD = "held"  # needs a person (identity not qualified, opposition, wrong card…)
    DEAD = "dead"  # permanent refusal or lifetime expired; kept for replay, never deleted
    CORRUPT = "corrupt"  # stored bytes no longer match their hash
    DONE = "done"  # registered in the DMP; payload purged after the retention period


_S = JobState

ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {
        _S.QUEUED: frozenset({_S.ACTIVE, _S.HELD, _S.DEAD}),
        _S.ACTIVE: frozenset(
            {
                _S.DONE,
                _S.DEFERRED,
                _S.AMBIGUOUS,
                _S.HELD,
                _S.DEAD,
                _S.QUEUED,  # restart recovery (the lease died), or a refused lot sent again alone
                _S.CORRUPT,
            }
        ),
        _S.DEFERRED: frozenset({_S.ACTIVE, _S.DEAD, _S.HELD}),
        _S.AMBIGUOUS: frozenset({_S.ACTIVE, _S.DONE, _S.DEFERRED, _S.DEAD}),
        _S.HELD: frozenset({_S.QUEUED, _S.DEAD}),  # release / cancel by a person
        _S.DEAD: frozenset({_S.QUEUED}),  # replay
        _S.CORRUPT: frozenset({_S.DEAD}),
        _S.DONE: frozenset(),
    }
)


class IllegalTransition(BridgeError):
    """A state change the rules of DESIGN.md §4 do not allow; nothing was changed."""

    code = "ILLEGAL_TRANSITION"
    event = "job_illegal_transition"

    def __init__(self, old: JobState, new: JobState) -> None:
        super().__init__(f"Changement d'état interdit pour ce document : {old} → {new}.")
        self.old = old
        self.new = new


class StateChanged(BridgeError):
    """The job is no longer in the state the caller read (someone else moved it meanwhile);
    nothing was changed."""

    code = "STATE_CHANGED"
    event = "job_state_changed"

    def __init__(self, expected: JobState, found: JobState) -> None:
        super().__init__(f"Le document a changé d'état entre-temps ({expected} → {found}) : "
                         "rien n'a été fait.")
        self.expected = expected
        self.found = found


def check_transition(old: JobState, new: JobState, *, expected: JobState | None = None) -> None:
    """Raise `StateChanged` when `expected` is given and `old` is not it, and
    `IllegalTransition` unless `old → new` is in `ALLOWED_TRANSITIONS`."""
    if expected is not None and old is not expected:
        raise StateChanged(expected, old)
    if new not in ALLOWED_TRANSITIONS[old]:
        raise IllegalTransition(old, new)


@dataclass(frozen=True)
class Intake:
    """What a connector hands over: the bytes as received and where they came from."""

    channel: str  # "folder", "http", "mllp"…
    source_ref: str  # file name, message control id…; never health data
    idempotency_key: str  # same input twice → same key → one job
    payload: bytes  # the document as received
    metadata: bytes  # JSON from the source (sidecar, HL7 fields); opaque here
    received_at: datetime  # aware (UTC)
    # Who the document is for and who wrote it, as opaque keys (`bridge.lot_keys`): documents
    # with the same two keys may travel in one submission set. None: never grouped.
    patient_key: str | None = None
    author_key: str | None = None
    # Hex SHA-256 of `payload` when the connector already computed it for its idempotency key
    # (a 100 KB PDF is then hashed once per intake, not twice); None: the store computes it.
    payload_sha256: str | None = None


def storable_text(value: str) -> str:
    """`value` as a database can store it (UTF-8). A file name with a byte that is not UTF-8
    reaches Python as a lone surrogate (`os.fsdecode`), which no UTF-8 encoder takes: it is
    written as its `\\udcXX` escape instead, the same every time (keys stay stable)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def storable(intake: Intake) -> Intake:
    """The intake with every text a store writes made storable (`storable_text`): one bad
    file name must fail nothing, least of all the other intakes of its group commit."""
    def fix(value: str | None) -> str | None:
        return None if value is None else storable_text(value)

    texts = (intake.channel, intake.source_ref, intake.idempotency_key, intake.patient_key,
             intake.author_key, intake.payload_sha256)
    if all(fix(text) == text for text in texts):
        return intake
    return replace(intake, channel=storable_text(intake.channel),
                   source_ref=storable_text(intake.source_ref),
                   idempotency_key=storable_text(intake.idempotency_key),
                   patient_key=fix(intake.patient_key), author_key=fix(intake.author_key),
                   payload_sha256=fix(intake.payload_sha256))


def reception_message_fr(channel: str) -> str:
    """The text of a job's first event, its reception."""
    return f"Document reçu ({channel}) et mis en file d'attente."


@dataclass(frozen=True)
class Job:
    """A job row as the store holds it (payload and package bytes are read separately)."""

    id: int
    state: JobState
    channel: str
    source_ref: str
    idempotency_key: str
    payload_sha256: str  # hex digest of the payload, checked on every read
    received_at: datetime
    updated_at: datetime
    attempts: int = 0  # attempts consumed (environment failures consume none)
    next_attempt_at: datetime | None = None  # when a deferred job becomes due
    lease_until: datetime | None = None  # set while active
    document_unique_id: str | None = None  # minted once, at packaging
    submission_unique_id: str | None = None  # minted once, at packaging
    last_error_code: str | None = None
    last_error_fr: str | None = None  # French reason shown to the user
    author_key: str | None = None  # who wrote it: RPPS@structure (`bridge.lot_keys`)
    patient_key: str | None = None  # pseudonymous key of the patient (`bridge.lot_keys`)
    purged_at: datetime | None = None  # bytes purged after the retention period (done jobs)


@dataclass(frozen=True)
class JobEvent:
    """One line of a job's timeline."""

    job_id: int
    at: datetime
    from_state: JobState | None  # None for the first event (reception)
    to_state: JobState
    code: str
    message_fr: str


def conservation(counts: Mapping[JobState, int], received: int) -> bool:
    """DESIGN.md §4: every job ever received is in exactly one state; none vanished.

    `received = done + dead + held + corrupt + queued + active + deferred + ambiguous`.
    """
    if any(counts.get(state, 0) < 0 for state in JobState):
        return False
    return received == sum(counts.get(state, 0) for state in JobState)
