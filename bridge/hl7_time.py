"""HL7 v2/v3 timestamps (TS/DTM) to aware datetimes.

A timestamp without a UTC offset is read as Europe/Paris wall-clock time: that is what French
practice software writes. In the repeated autumn hour the first (summer-time) reading is taken.
The zone data comes from the `tzdata` package where the OS has none (Windows).
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

# YYYYMMDD[HH[MM[SS[.S…]]]][±ZZZZ]. A document time needs the day at least.
_TS = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?$"
)
PARIS = ZoneInfo("Europe/Paris")


def parse_hl7_ts(value: str) -> dt.datetime:
    """An aware datetime (fixed offset) from a HL7 TS; no offset means Europe/Paris."""
    match = _TS.match(value.strip())
    if match is None:
        raise ValueError(f"not a HL7 TS: {value!r}")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    local = dt.datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        int((fraction or "0").ljust(6, "0")),
    )
    if sign is None:
        offset = local.replace(tzinfo=PARIS, fold=0).utcoffset()
        assert offset is not None  # a ZoneInfo always has an offset
        return local.replace(tzinfo=dt.timezone(offset))
    if int(off_h) > 14 or int(off_m) > 59:
        raise ValueError(f"bad UTC offset in {value!r}")
    delta = dt.timedelta(hours=int(off_h), minutes=int(off_m))
    return local.replace(tzinfo=dt.timezone(-delta if sign == "-" else delta))
