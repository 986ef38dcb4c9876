"""Care of the queue as time passes (run by the dispatcher about once a minute):

- a job waiting past its lifetime ends `dead`, with an alert (never deleted);
- a job still not in the DMP after 24 h raises ONE warning (alert=True), recorded in its
  timeline so a restart does not repeat it;
- the bytes of `done` jobs are purged after the retention period (the row, its hashes and its
  timeline stay: the conservation invariant and the history hold).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import structlog

from bridge.jobs import Job, JobState
from bridge.store_port import Store

log = structlog.get_logger("dmp_bridge.dispatch")

SWEEP_EVERY = dt.timedelta(minutes=1)
PURGE_EVERY = dt.timedelta(hours=1)
DEFAULT_WARN_AFTER = dt.timedelta(hours=24)
# Health data is kept in the queue no longer than needed to prove and replay: 90 days cover the
# practice's questions about a document ("was it sent?") while its bytes are still at hand.
DEFAULT_RETENTION = dt.timedelta(days=90)
WARNING_CODE = "QUEUE_AGE_WARNING"
# Waiting for the DMP or for a person: the states a job can linger in.
WAITING_STATES = (JobState.QUEUED, JobState.DEFERRED, JobState.AMBIGUOUS, JobState.HELD)
MANY = 100_000


class QueueCare:
    """Lifetime expiry, the long-wait warning and the purge of done jobs."""

    def __init__(self, store: Store, *, lifetime: dt.timedelta,
                 warn_after: dt.timedelta = DEFAULT_WARN_AFTER,
                 retention: dt.timedelta = DEFAULT_RETENTION) -> None:
        self._store = store
        self._lifetime = lifetime
        self._warn_after = warn_after
        self._retention = retention
        self._next_sweep: dt.datetime | None = None
        self._next_purge: dt.datetime | None = None
        self._warned: set[int] = set()  # known to carry the warning (read once per process)
        # Told of each job that expired (the dispatcher: audit journal, business acknowledgement).
        self.on_expired: Callable[[Job], Awaitable[None]] | None = None

    async def sweep(self, now: dt.datetime) -> None:
        if self._next_sweep is not None and now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY
        for state in WAITING_STATES:
            for job in await asyncio.to_thread(self._store.list_jobs, state, MANY):
                await self._care(job, now)
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY
            purged = await asyncio.to_thread(self._store.purge_done, now - self._retention,
                                             now=now)
            if purged:
                log.info("done_jobs_purged", jobs=purged, retention_days=self._retention.days)

    async def _care(self, job: Job, now: dt.datetime) -> None:
        age = now - job.received_at
        if job.state in (JobState.QUEUED, JobState.DEFERRED) and age >= self._lifetime:
            # Ambiguous jobs are left alone: they may be in the DMP, and only asking it can
            # tell. Held ones wait for a person, who has been told.
            await self._expire(job, now)
            return
        if age >= self._warn_after and job.id not in self._warned:
            await self._warn(job, now)

    async def _expire(self, job: Job, now: dt.datetime) -> None:
        days = self._lifetime.days
        expired = await asyncio.to_thread(
            self._store.transition, job.id, JobState.DEAD, code="LIFETIME_EXPIRED",
            message_fr=f"Document toujours pas enregistré dans le DMP après {days} jours"
            " : envoi abandonné. Vérifiez la cause indiquée plus haut dans son "
            "historique, puis renvoyez-le (dmp-bridge replay).", now=now)
        log.error("job_lifetime_expired", job_id=job.id, alert=True)
        if self.on_expired is not None:
            await self.on_expired(expired)

    async def _warn(self, job: Job, now: dt.datetime) -> None:
        events = await asyncio.to_thread(self._store.events, job.id)
        self._warned.add(job.id)
        if any(event.code == WARNING_CODE for event in events):
            return  # warned before a restart
        hours = int(self._warn_after.total_seconds() // 3600)
        # Journaled first: if the process dies between the two lines, the warning is lost
        # rather than repeated (the job is still listed as waiting on the dashboard).
        await asyncio.to_thread(
            self._store.note, job.id, code=WARNING_CODE, now=now,
            message_fr=f"Toujours pas enregistré dans le DMP après {hours} h "
            f"(état : {job.state.value}). Dernier motif : {job.last_error_fr or 'aucun'}")
        log.warning("job_waiting_long", job_id=job.id, state=job.state.value, hours=hours,
                    alert=True)
