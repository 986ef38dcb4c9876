"""HL7 v2 DTM values in XDS slots (spec §3.4): `YYYY[MM[DD[hh[mm[ss]]]]]`, in UTC.

Real clients send local time (spec §7): with an offset suffix, or, like DRIMbox, the wall clock
of Paris without any suffix. Both are "lenient" variants: refused strict, logged when lenient.
The second is recognisable only on submissionTime, which must be close to now.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from service.simulator.problems import IheCode, Problem

DTM = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2})?)?)?)?)?")
DTM_WITH_OFFSET = re.compile(r"(\d{4,14})(\.\d+)?[+-]\d{4}")
PARIS = ZoneInfo("Europe/Paris")
META = IheCode.REGISTRY_METADATA


def check_dtm(value: str | None, loc: str) -> list[Problem]:
    """The format of one DTM slot value (absent values are judged elsewhere)."""
    if not value:
        return []
    if DTM.fullmatch(value):
        return []
    if DTM_WITH_OFFSET.fullmatch(value):
        return [Problem(META, loc, "Date avec décalage horaire local : l'heure UTC sans suffixe "
                                   "est attendue (AAAAMMJJhhmmss).", lenient=True)]
    return [Problem(META, loc, "Date mal formée : format DTM AAAAMMJJ[hhmm[ss]] attendu.")]


def _parse(value: str) -> dt.datetime | None:
    if len(value) != 14 or not value.isdigit():
        return None
    return dt.datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)


def check_submission_time(value: str | None, loc: str, now: dt.datetime,
                          skew_seconds: int) -> list[Problem]:
    """submissionTime written in Paris wall-clock time instead of UTC (DRIMbox)."""
    moment = _parse(value or "")
    if moment is None:
        return []
    window = dt.timedelta(seconds=skew_seconds)
    local = now.astimezone(PARIS).replace(tzinfo=dt.UTC)
    if abs(moment - now) > window and abs(moment - local) <= window:
        return [Problem(META, loc, "submissionTime en heure locale de Paris : l'heure UTC est "
                                   "attendue.", lenient=True)]
    return []
