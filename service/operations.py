"""What a person may do to a document: release, confirm with the patient, replay, retry now,
cancel. One implementation for the dashboard's buttons and `dmp-bridge release / replay / retry
/ cancel`, every outcome recorded in the audit journal (who, which document, what came of it).

Each action is one or two journaled `Store.transition` calls, checked by the job rules
(`bridge.jobs.check_transition`): a job that changed meanwhile (the dispatcher took it) is not
touched and the user is told, in French. Synchronous: call from a worker thread.

The audit record is written AFTER the state change: the journal says what happened, not what was
tried. If it cannot be written, the change stays and the outcome says so (`audit_problem_fr`):
the CLI prints it and exits 1, the dashboard shows it as an error. Nothing here logs (callers
log outcomes, without health data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from bridge.audit import AuditAction, AuditError
from bridge.errors import BridgeError
from bridge.jobs import Job, JobState
from bridge.store_port import Store
from service.audit_trail import AuditTrail
from service.labels import RELEASED_BY_USER, STATE_LABELS

REPLAYED_BY_USER = "REPLAYED_BY_USER"
CANCELLED_BY_USER = "CANCELLED_BY_USER"
RETRIED_BY_USER = "RETRIED_BY_USER"
CONFIRM_WITH_PATIENT = "CONFIRM_WITH_PATIENT"
# Holds that releasing cannot lift: the document itself must be corrected and sent again.
NOT_RELEASABLE = frozenset({"IDENTITY_PROV", "IDENTITY_RECUP", "IDENTITY_VALI",
                            "INS_TEST_IN_PRODUCTION"})
# Result codes of a refusal, in the audit journal (besides `NOT_<state>` and error codes).
OK = "ok"
UNKNOWN_JOB = "UNKNOWN_JOB"
LOT_PARTNER_WAITING = "LOT_PARTNER_WAITING"
# A deferred job is leased for this long while it is moved back to the queue (two steps below):
# if the process dies in between, the service's next start puts it back (recover_on_start).
RETRY_LEASE = dt.timedelta(minutes=1)
_MANY = 100_000


class Action(StrEnum):
    """The buttons of a document's page (their values are the last part of the form's address)."""

    RELEASE = "liberer"  # held → queued
    CONFIRM = "confirmer"  # held for confirmation with the patient → queued (same as release)
    REPLAY = "renvoyer"  # dead → queued
    RETRY_NOW = "reessayer"  # deferred → queued, without waiting for the planned time
    CANCEL = "annuler"  # held → dead


@dataclass(frozen=True)
class ActionOutcome:
    """What happened, in French for the user, and as recorded in the audit journal."""

    done: bool
    message_fr: str
    result: str  # "ok", or why nothing was done: UNKNOWN_JOB, NOT_HELD…, an error code
    job: Job | None = None
    audit_problem_fr: str | None = None  # the journal could not be written: what to do

    @property
    def audited(self) -> bool:
        """False when the audit journal could not be written (the action itself stands)."""
        return self.audit_problem_fr is None


@dataclass(frozen=True)
class _Rule:
    start: JobState
    end: JobState
    code: str  # the event code in the job's history
    message_fr: str
    audit: AuditAction


_RULES: dict[Action, _Rule] = {
    Action.RELEASE: _Rule(JobState.HELD, JobState.QUEUED, RELEASED_BY_USER,
                          "libéré par l'utilisateur, il va être envoyé.", AuditAction.LIBERATION),
    Action.CONFIRM: _Rule(JobState.HELD, JobState.QUEUED, RELEASED_BY_USER,
                          "information confirmée avec le patient par l'utilisateur : "
                          "il va être envoyé.", AuditAction.LIBERATION),
    Action.REPLAY: _Rule(JobState.DEAD, JobState.QUEUED, REPLAYED_BY_USER,
                         "renvoyé par l'utilisateur : il repart dans la file d'envoi.",
                         AuditAction.RENVOI),
    Action.RETRY_NOW: _Rule(JobState.DEFERRED, JobState.QUEUED, RETRIED_BY_USER,
                            "nouvel essai demandé par l'utilisateur : il repart dans la file "
                            "d'envoi sans attendre l'heure prévue.", AuditAction.RENVOI),
    Action.CANCEL: _Rule(JobState.HELD, JobState.DEAD, CANCELLED_BY_USER,
                         "envoi annulé par l'utilisateur.", AuditAction.ANNULATION),
}


def available_actions(job: Job) -> list[Action]:
    """The buttons to show for this job, in order."""
    if job.state is JobState.HELD:
        if job.last_error_code == CONFIRM_WITH_PATIENT:
            return [Action.CONFIRM, Action.CANCEL]
        if job.last_error_code in NOT_RELEASABLE:
            return [Action.CANCEL]
        return [Action.RELEASE, Action.CANCEL]
    if job.state is JobState.DEAD:
        return [Action.REPLAY]
    if job.state is JobState.DEFERRED:
        return [Action.RETRY_NOW]
    return []


def retry_action(job: Job | None) -> Action:
    """`dmp-bridge retry`: a refused document is replayed; any other is retried now (which is
    refused, and recorded so, unless it is waiting for its next try)."""
    return Action.REPLAY if job is not None and job.state is JobState.DEAD else Action.RETRY_NOW


def apply_action(store: Store, job_id: int, action: Action, *, now: dt.datetime, actor: str,
                 audit: AuditTrail | None) -> ActionOutcome:
    """Do `action` on job `job_id` if its state allows it, and record the outcome (done or
    refused) in `audit` as `actor`'s. Never raises for a user's mistake nor for the journal."""
    job = store.get(job_id)
    outcome, detail = _act(store, job_id, job, action, now=now)
    if audit is None:
        return outcome
    problem = _record(audit, actor, _RULES[action].audit, job_id, outcome.result,
                      document_unique_id=job.document_unique_id if job else None,
                      detail=f"{action.value} : {detail}")
    return dataclasses.replace(outcome, audit_problem_fr=problem)


def _act(store: Store, job_id: int, job: Job | None, action: Action, *,
         now: dt.datetime) -> tuple[ActionOutcome, str]:
    """The state change, or why not; and the audit record's detail."""
    rule = _RULES[action]
    if job is None:
        message = (f"Le document n° {job_id} n'est pas « {STATE_LABELS[rule.start]} » "
                   "(inconnu) : rien à faire.")
        return ActionOutcome(False, message, UNKNOWN_JOB), "refusé, document inconnu"
    if job.state is not rule.start:
        message = (f"Le document n° {job_id} n'est pas « {STATE_LABELS[rule.start]} » "
                   f"({STATE_LABELS[job.state]}) : rien à faire.")
        return (ActionOutcome(False, message, f"NOT_{rule.start.value.upper()}", job),
                f"refusé, document {job.state.value}")
    steps = f"{rule.start.value} → {rule.end.value}"
    try:
        if action is Action.RETRY_NOW:
            partner = _lot_partner_waiting(store, job)
            if partner is not None:
                message = (f"Le document n° {job.id} fait partie d'un lot avec le document "
                           f"n° {partner} : il repartira avec lui à l'heure prévue.")
                return (ActionOutcome(False, message, LOT_PARTNER_WAITING, job),
                        f"refusé, lot avec le document n° {partner}")
            # DEFERRED → QUEUED is not a transition of the rules; DEFERRED → ACTIVE → QUEUED is
            # (the path of a restart). The lease is the dispatcher's guard: while it is ours,
            # no worker can claim the job.
            store.transition(job.id, JobState.ACTIVE, code=rule.code, message_fr=rule.message_fr,
                             now=now, lease=RETRY_LEASE, expected=rule.start)
            expected = JobState.ACTIVE
        else:
            expected = rule.start
        # Checked in the same transaction: if the service took the job since we read it (a
        # release, then a claim), nothing changes and the person is told.
        updated = store.transition(job.id, rule.end, code=rule.code, message_fr=rule.message_fr,
                                   now=now, expected=expected)
    except BridgeError as exc:
        message = (f"{exc.message_fr} Le service vient peut-être de le prendre en charge : "
                   "consultez son historique.")
        return ActionOutcome(False, message, exc.code, job), f"{steps} refusé"
    return (ActionOutcome(True, f"Document n° {job_id} : {rule.message_fr}", OK, updated),
            f"{steps} ({rule.code})")


def _record(audit: AuditTrail, actor: str, action: AuditAction, job_id: int, result: str, *,
            document_unique_id: str | None, detail: str) -> str | None:
    """Write the audit record; None if written, else what to tell the user."""
    try:
        audit.operator_action(actor, action, job_id, result,
                              document_unique_id=document_unique_id, detail=detail)
    except (AuditError, OSError) as exc:
        reason = exc.message_fr if isinstance(exc, AuditError) else str(exc)
        return (f"Attention : l'action n'a pas pu être inscrite au journal d'audit ({reason}). "
                "Lancez « dmp-bridge doctor » ou prévenez la personne qui gère l'installation.")
    return None


def _lot_partner_waiting(store: Store, job: Job) -> int | None:
    """A deferred job whose package is shared with other waiting documents goes with them, at
    the planned time: taking it out of the lot alone could send the lot's bytes twice. The
    number of one such document, or None."""
    if job.submission_unique_id is None:
        return None
    for state in (JobState.QUEUED, JobState.DEFERRED, JobState.ACTIVE):
        for other in store.list_jobs(state, _MANY):
            if other.id != job.id and other.submission_unique_id == job.submission_unique_id:
                return other.id
    return None
