"""The patient registry keeps each patient's DMP choices across restarts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from connectors.sqlite_patients import SqlitePatientRegistry

INS = "279035121518989"
NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)


def test_an_unknown_patient_has_no_record(tmp_path: Path) -> None:
    with SqlitePatientRegistry(tmp_path / "file.sqlite3") as registry:
        assert registry.get(INS) is None


def test_an_opposition_is_kept_until_it_is_lifted_explicitly(tmp_path: Path) -> None:
    path = tmp_path / "file.sqlite3"
    with SqlitePatientRegistry(path) as registry:
        registry.record(INS, now=NOW, feeding_opposition=True)
        # A later document that says nothing about opposition does not lift it.
        registry.record(INS, now=NOW + dt.timedelta(days=1))
    with SqlitePatientRegistry(path) as registry:
        record = registry.get(INS)
        assert record is not None and record.feeding_opposition
        assert record.opposition_at == NOW
        lifted = registry.record(INS, now=NOW + dt.timedelta(days=2), feeding_opposition=False)
        assert not lifted.feeding_opposition and lifted.opposition_at is None


def test_consultation_consent_is_recorded_with_its_date(tmp_path: Path) -> None:
    with SqlitePatientRegistry(tmp_path / "file.sqlite3") as registry:
        record = registry.record(INS, now=NOW, consultation_consent_at=dt.date(2026, 11, 1))
        assert record.consultation_consent_at == dt.date(2026, 11, 1)
        assert record.consent_expires_on() == dt.date(2027, 11, 1)
        assert [r.ins for r in registry.all()] == [INS]
