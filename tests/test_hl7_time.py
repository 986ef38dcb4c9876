"""HL7 timestamps: an offset is honoured; no offset means Paris wall-clock time."""

from __future__ import annotations

import datetime as dt

from bridge.hl7_time import parse_hl7_ts


def test_an_explicit_offset_is_kept() -> None:
    assert parse_hl7_ts("20260315101500-0300") == dt.datetime(2026, 3, 15, 13, 15, tzinfo=dt.UTC)


def test_winter_and_summer_paris_offsets() -> None:
    assert parse_hl7_ts("20260115103000").utcoffset() == dt.timedelta(hours=1)
    assert parse_hl7_ts("20260715103000").utcoffset() == dt.timedelta(hours=2)


def test_the_repeated_autumn_hour_is_read_as_summer_time() -> None:
    # 25 October 2026, 02:30 happens twice in Paris; practice software cannot tell which.
    assert parse_hl7_ts("202610250230").utcoffset() == dt.timedelta(hours=2)


def test_day_precision_is_enough() -> None:
    assert parse_hl7_ts("20261121") == dt.datetime(2026, 11, 20, 23, 0, tzinfo=dt.UTC)
