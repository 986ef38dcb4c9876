"""Certificate expiry warnings: the structure's ORG AUTH_CLI / ORG SIGN today, a CPS card's
certificates tomorrow.

A warning is due 30, 7 and 1 day(s) before a certificate's end of validity, and once more when it
has expired. Each is announced once: the caller keeps the set of announcement keys already made
(it persists `ExpiryCheck.announced`) and gives it back on the next check. The keys name the
certificate's end of validity, so a renewed certificate starts afresh.

Pure: no clock, no file; the caller says what "now" is and where the new certificate goes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Set
from dataclasses import dataclass

THRESHOLD_DAYS: tuple[int, ...] = (30, 7, 1)
_EXPIRED = "expire"
_CONSEQUENCE = (
    "Sans certificat valide, plus aucun document ne part vers le DMP (ils attendent dans la file)."
)


@dataclass(frozen=True)
class CertificateValidity:
    """One certificate as the warnings see it.

    `role` is French and reads after « Le » : "certificat d'authentification (ORG AUTH_CLI)".
    `renewal_fr` says what to do: where to renew it and where to put the new one.
    """

    role: str
    not_after: dt.datetime
    renewal_fr: str


@dataclass(frozen=True)
class ExpiryWarning:
    """A warning to show (dashboard, alert, log): `threshold_days` is None once expired."""

    role: str
    not_after: dt.datetime
    threshold_days: int | None
    key: str
    message_fr: str

    @property
    def expired(self) -> bool:
        return self.threshold_days is None

    @property
    def event(self) -> str:
        return "certificate_expired" if self.expired else "certificate_expiring"


@dataclass(frozen=True)
class ExpiryCheck:
    """The warnings newly due, and the announcement keys to persist (the given set plus these)."""

    warnings: tuple[ExpiryWarning, ...]
    announced: frozenset[str]


def announcement_key(validity: CertificateValidity, threshold_days: int | None) -> str:
    """Stable text key of one announcement (role, end of validity, threshold)."""
    stage = _EXPIRED if threshold_days is None else f"{threshold_days}j"
    return f"{validity.role}|{_utc(validity.not_after):%Y-%m-%dT%H:%M:%SZ}|{stage}"


def expiry_warnings(
    validities: Iterable[CertificateValidity], now: dt.datetime, announced: Set[str]
) -> ExpiryCheck:
    """The warnings due at `now` that `announced` does not hold yet, one per certificate at most.

    When several thresholds were crossed since the last check (the service was stopped), only
    the most urgent one is shown; the others are marked announced with it, never shown late.
    """
    now = _utc(now)
    keys = set(announced)
    warnings: list[ExpiryWarning] = []
    for validity in validities:
        due = _due_stages(_utc(validity.not_after) - now)
        fresh = [stage for stage in due if announcement_key(validity, stage) not in keys]
        keys.update(announcement_key(validity, stage) for stage in due)
        if fresh:
            most_urgent = fresh[-1]
            warnings.append(
                ExpiryWarning(
                    role=validity.role,
                    not_after=_utc(validity.not_after),
                    threshold_days=most_urgent,
                    key=announcement_key(validity, most_urgent),
                    message_fr=_message(validity, now, most_urgent),
                )
            )
    return ExpiryCheck(tuple(warnings), frozenset(keys))


def _due_stages(remaining: dt.timedelta) -> list[int | None]:
    """Thresholds already reached, least urgent first; None (expired) last."""
    stages: list[int | None] = [
        days for days in THRESHOLD_DAYS if remaining <= dt.timedelta(days=days)
    ]
    if remaining < dt.timedelta(0):
        stages.append(None)
    return stages


def _message(validity: CertificateValidity, now: dt.datetime, threshold_days: int | None) -> str:
    not_after = _utc(validity.not_after)
    day = f"{not_after:%d/%m/%Y}"
    if threshold_days is None:
        return (
            f"Le {validity.role} a expiré le {day} à {not_after:%H:%M} UTC. {_CONSEQUENCE} "
            f"{validity.renewal_fr}"
        )
    remaining = not_after - now
    if remaining < dt.timedelta(days=1):
        when = f"le {day} à {not_after:%H:%M} UTC, dans moins de 24 heures"
    else:
        count = remaining.days
        when = f"le {day}, dans {count} jour{'s' if count > 1 else ''}"
    opening = "Urgent : le" if threshold_days <= 7 else "Le"
    return f"{opening} {validity.role} expire {when}. {_CONSEQUENCE} {validity.renewal_fr}"


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("certificate expiry needs timezone-aware datetimes")
    return value.astimezone(dt.UTC)
