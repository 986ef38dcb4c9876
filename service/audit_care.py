"""Retention of the audit journal while the service runs (`bridge.audit_retention_days`).

One pass at start, then one every `every` (6 h): the records older than the retention leave the
journal behind one purge checkpoint (`AuditTrail.purge_before`), so what is kept still
verifies. A pass that fails (journal damaged: a purge would hide it; disk; permissions) is
logged and the next pass tries again: the service never stops for it. Logs carry counts and
error codes only, never a record's content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from bridge.audit import AuditError
from service.audit_trail import AuditTrail, retention_cutoff

log = structlog.get_logger("dmp_bridge.audit")

PURGE_EVERY = timedelta(hours=6)


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def purge_expired(trail: AuditTrail, days: int, now: datetime) -> int | None:
    """One pass: how many records left the journal, or None when the pass failed (logged)."""
    try:
        purged = await asyncio.to_thread(trail.purge_before, retention_cutoff(now, days), at=now)
    except AuditError as exc:  # AUDIT_DAMAGED: the journal does not verify, nothing is purged
        log.error("audit_purge_failed", code=exc.code, retention_days=days, alert=True)
        return None
    except Exception as exc:  # disk, permissions…: the next pass tries again
        log.error("audit_purge_failed", error_type=type(exc).__name__, retention_days=days,
                  alert=True)
        return None
    if purged:
        log.info("audit_purged", records=purged, retention_days=days)
    return purged


async def keep_audit_retention(trail: AuditTrail, days: int, *, every: timedelta = PURGE_EVERY,
                               clock: Callable[[], datetime] = _utc_now) -> None:
    """Purge the records older than `days` days now, then every `every`, until cancelled."""
    while True:
        await purge_expired(trail, days, clock())
        await asyncio.sleep(every.total_seconds())
