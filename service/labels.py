"""French words for what the user reads about job states."""

from __future__ import annotations

from bridge.jobs import JobState

STATE_LABELS: dict[JobState, str] = {
    JobState.QUEUED: "en attente d'envoi",
    JobState.ACTIVE: "en cours d'envoi",
    JobState.DEFERRED: "nouvel essai programmé",
    JobState.AMBIGUOUS: "vérification auprès du DMP",
    JobState.HELD: "en attente d'une action",
    JobState.DEAD: "refusé (à corriger)",
    JobState.CORRUPT: "altéré",
    JobState.DONE: "enregistré dans le DMP",
}

# Event code of an operator's release: the dispatcher no longer holds the job for confirmation.
RELEASED_BY_USER = "RELEASED_BY_USER"
