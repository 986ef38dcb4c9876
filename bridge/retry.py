"""When to try again after a transient failure: exponential backoff with full jitter.

Defaults, and why: the first retry after 30 s absorbs a DMP restart or a network blip; doubling
up to one hour keeps a long outage from turning hundreds of practices into a retry storm when the
DMP comes back (the jitter spreads them); 48 attempts at the cap cover about two days, after which
a person must look (the job ends `dead`, never silently dropped).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the backoff; configurable, defaults documented above."""

    first_delay: dt.timedelta = dt.timedelta(seconds=30)
    max_delay: dt.timedelta = dt.timedelta(hours=1)
    max_attempts: int = 48

    def delay(self, attempts: int, jitter: float) -> dt.timedelta:
        """Delay before attempt `attempts + 1`; `jitter` in [0, 1) comes from the caller's RNG."""
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        factor = 2 ** min(max(attempts - 1, 0), 30)
        ceiling: dt.timedelta = min(self.max_delay, self.first_delay * factor)
        # Half fixed, half random: never immediate, never synchronized across installations.
        return ceiling / 2 + (ceiling / 2) * jitter

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
