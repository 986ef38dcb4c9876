"""PAM-FR ADT (A01, A04, A08, A28, A31): the patient's DMP choices of segment ZFA reach the patient
registry, and the sender hears AA only once they are committed. An opposition recorded this way
holds every document of that patient (the identity gate reads the same registry)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bridge.errors import IdentityRejected
from bridge.hl7v2 import AppCode, ErrorCode, HL7Rejected, PatientUpdate, parse_adt, parse_message
from bridge.identity_gate import check_not_opposed
from bridge.jobs import Intake, Job
from connectors.mllp_server import MllpOutcome, MllpServer, MllpSettings, patient_recorder
from connectors.sqlite_patients import SqlitePatientRegistry
from tests.hl7.messages import INS, adt, encode, sample, zfa
from tests.hl7.test_mllp_server import err, exchange, msa

PARIS = dt.timezone(dt.timedelta(hours=1))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SqlitePatientRegistry]:
    with SqlitePatientRegistry(tmp_path / "file.sqlite3") as opened:
        yield opened


async def no_documents(intake: Intake) -> tuple[Job, bool]:
    raise AssertionError("an ADT must never become a job")


@contextlib.asynccontextmanager
async def listening(registry: SqlitePatientRegistry | None) -> AsyncIterator[MllpServer]:
    outcomes: list[MllpOutcome] = []
    server = MllpServer(no_documents, MllpSettings(port=0), on_outcome=outcomes.append,
                        on_patient=None if registry is None else patient_recorder(registry))
    server.outcomes = outcomes  # type: ignore[attr-defined]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# -- the pure reading --------------------------------------------------------------------------

def test_the_ans_opposition_sample_reads_io_with_its_date_and_inc() -> None:
    update = parse_adt(sample("09-hl7-adt-a01-pamfr-dmp-opposition.er7"))
    assert (update.event, update.ins, update.ins_oid, update.identity_status) == (
        "A01", INS, "1.2.250.1.213.1.4.10", "VALI")
    assert (update.dmp_status, update.feeding_opposition, update.consultation_consent) == (
        "ACTIF", True, False)
    assert update.feeding_opposition_at == dt.datetime(2024, 3, 9, 11, 11, 54, tzinfo=PARIS)
    changes = update.registry_changes()
    assert changes.feeding_opposition is True and changes.consent_withdrawn
    assert changes.opposition_at == update.feeding_opposition_at


def test_the_ans_consent_sample_lifts_nothing_it_should_not_and_dates_the_consent() -> None:
    update = parse_adt(sample("10-hl7-adt-a01-pamfr-dmp-consent.er7"))
    assert (update.feeding_opposition, update.consultation_consent) == (False, True)
    changes = update.registry_changes()
    assert changes.feeding_opposition is False  # VALI: the INS is trusted enough to lift it
    assert changes.consultation_consent_at == dt.date(2024, 3, 6)


def test_na_means_nothing_was_collected_and_nothing_changes() -> None:
    update = parse_adt(sample("11-hl7-adt-a01-pamfr-dmp-not-collected.er7"))
    assert (update.feeding_opposition, update.consultation_consent) == (None, None)
    assert update.registry_changes().empty


def test_a_provisional_identity_may_add_an_opposition_but_never_lift_one() -> None:
    opposed = parse_adt(encode(adt(status="PROV", zfa_segment=zfa("IO", "IC"))))
    assert opposed.registry_changes().feeding_opposition is True
    assert opposed.registry_changes().consultation_consent_at is None  # consent: not trusted
    lifted = parse_adt(encode(adt(status="PROV", zfa_segment=zfa("INO", "INC"))))
    assert lifted.registry_changes().feeding_opposition is None
    assert lifted.registry_changes().consent_withdrawn  # a refusal is always safe to record


@pytest.mark.parametrize("event", ["A01", "A04", "A08", "A28", "A31"])
def test_each_pam_fr_event_carrying_zfa_is_read(event: str) -> None:
    update = parse_adt(encode(adt(event=event)))
    assert update.event == event and update.feeding_opposition is True


def test_an_adt_without_zfa_is_valid_and_says_nothing() -> None:
    segments = adt()[:-1]
    update = parse_adt(encode(segments))
    assert not update.has_zfa and update.registry_changes().empty


@pytest.mark.parametrize(("segments", "error", "app", "where"), [
    (adt(event="A02"), ErrorCode.EVENT, None, "MSH^1^9^1^2"),
    (adt(zfa_segment=zfa("OUI")), ErrorCode.TABLE_VALUE, None, "ZFA^1^9"),
    (adt(zfa_segment=zfa("IO", "PEUT-ETRE")), ErrorCode.TABLE_VALUE, None, "ZFA^1^11"),
    (adt(zfa_segment=zfa(status="OUVERT")), ErrorCode.TABLE_VALUE, None, "ZFA^1^1"),
    (adt(zfa_segment=zfa(day="hier")), ErrorCode.DATA_TYPE, None, "ZFA^1^2"),
    (adt(ids=""), ErrorCode.REQUIRED_FIELD, None, "PID^1^3"),
    (adt(ids="000123^^^CAB-LILAS&1.2.250.1.999&ISO^PI"), ErrorCode.APPLICATION,
     AppCode.INS_MISSING, "PID^1^3"),
    (adt(ids="279035121518988^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"),
     ErrorCode.DATA_TYPE, None, "PID^1^3"),
])
def test_each_faulty_adt_gets_its_documented_code(
        segments: list[str], error: ErrorCode, app: AppCode | None, where: str) -> None:
    with pytest.raises(HL7Rejected) as caught:
        parse_adt(encode(segments))
    assert (caught.value.error, caught.value.app_code) == (error, app)
    assert caught.value.location is not None and caught.value.location.erl() == where
    assert caught.value.message_fr


def test_a_document_message_is_still_not_an_adt_and_vice_versa() -> None:
    with pytest.raises(HL7Rejected) as caught:
        parse_message(encode(adt()))
    assert caught.value.error is ErrorCode.MESSAGE_TYPE


# -- the registry --------------------------------------------------------------------------------

def test_a_refused_consultation_clears_the_consent_date(registry: SqlitePatientRegistry) -> None:
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    registry.record(INS, now=now, consultation_consent_at=dt.date(2026, 1, 1))
    record = registry.record(INS, now=now, consent_withdrawn=True)
    assert record.consultation_consent_at is None
    again = registry.record(INS, now=now, consultation_consent_at=dt.date(2026, 2, 1),
                            consent_withdrawn=True)  # a date in the same call wins
    assert again.consultation_consent_at == dt.date(2026, 2, 1)


# -- over MLLP ----------------------------------------------------------------------------------

async def test_an_opposition_is_committed_before_aa_and_then_holds_the_patients_documents(
        registry: SqlitePatientRegistry) -> None:
    async with listening(registry) as server:
        ack = await exchange(server.port, sample("09-hl7-adt-a01-pamfr-dmp-opposition.er7"))
        # AA means committed: the registry already says so when the ACK arrives.
        record = registry.get(INS)
    assert msa(ack)[1:] == ["AA", "3977"]
    assert ack.split(b"\r")[0].split(b"|")[8] == b"ACK^A01^ACK"
    assert record is not None and record.feeding_opposition
    assert record.opposition_at == dt.datetime(2024, 3, 9, 11, 11, 54, tzinfo=PARIS)
    with pytest.raises(IdentityRejected) as held:
        check_not_opposed(record)
    assert held.value.code == "PATIENT_OPPOSED"


async def test_a_later_adt_lifts_the_opposition_and_records_the_consent(
        registry: SqlitePatientRegistry) -> None:
    async with listening(registry) as server:
        await exchange(server.port, encode(adt("A-1", zfa_segment=zfa("IO", "INC"))))
        ack = await exchange(server.port, encode(adt("A-2", event="A08",
                                                     zfa_segment=zfa("INO", "IC"))))
    assert msa(ack)[1:] == ["AA", "A-2"]
    record = registry.get(INS)
    assert record is not None and not record.feeding_opposition
    assert record.consultation_consent_at == dt.date(2026, 11, 21)
    check_not_opposed(record)  # documents may go again


async def test_not_collected_values_leave_the_registry_untouched(
        registry: SqlitePatientRegistry) -> None:
    async with listening(registry) as server:
        ack = await exchange(server.port, sample("11-hl7-adt-a01-pamfr-dmp-not-collected.er7"))
    assert msa(ack)[1:] == ["AA", "3979"]
    assert registry.get(INS) is None


async def test_a_faulty_zfa_gets_ae_with_err_and_records_nothing(
        registry: SqlitePatientRegistry) -> None:
    async with listening(registry) as server:
        ack = await exchange(server.port, encode(adt("BAD-1", zfa_segment=zfa("OUI"))))
    assert msa(ack)[1:] == ["AE", "BAD-1"]
    assert err(ack)[2] == "ZFA^1^9" and err(ack)[3].startswith("103^")
    assert "ZFA-9" in err(ack)[8]
    assert registry.get(INS) is None


async def test_a_registry_that_cannot_commit_gets_ar_never_aa() -> None:
    async def broken(update: PatientUpdate) -> None:
        raise OSError("disk full")

    server = MllpServer(no_documents, MllpSettings(port=0), on_patient=broken)
    await server.start()
    try:
        ack = await exchange(server.port, encode(adt("S-1")))
    finally:
        await server.stop()
    assert msa(ack)[1:] == ["AR", "S-1"] and err(ack)[3].startswith("207^")
    assert "renvoyez" in err(ack)[8]


async def test_without_an_adt_callback_adt_is_refused_as_before() -> None:
    async with listening(None) as server:
        ack = await exchange(server.port, encode(adt("OLD-1")))
    assert msa(ack)[1:] == ["AR", "OLD-1"] and err(ack)[3].startswith("200^")


async def test_the_ack_waits_for_a_slow_registry(registry: SqlitePatientRegistry) -> None:
    events: list[str] = []
    record = patient_recorder(registry)

    async def slow(update: PatientUpdate) -> None:
        await asyncio.sleep(0.2)
        await record(update)
        events.append("committed")

    server = MllpServer(no_documents, MllpSettings(port=0), on_patient=slow)
    await server.start()
    try:
        ack = await exchange(server.port, encode(adt("SLOW-1")))
        events.append("ack received")
    finally:
        await server.stop()
    assert msa(ack)[1:] == ["AA", "SLOW-1"]
    assert events == ["committed", "ack received"]

