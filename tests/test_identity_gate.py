"""The identity gate: only qualified identities, never test INS in production, never a patient
who opposed; and the INS key, checked on any NIR including Corsica."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.domain import IdentityStatus, Ins, InsOid
from bridge.errors import IdentityRejected
from bridge.identity_gate import (
    PatientRecord,
    Target,
    check_identity,
    check_not_opposed,
)
from bridge.ins import nir_key, parse_ins
from tests.factories import make_patient

# A NIR: sex, year, month, département (2 digits, or 2A/2B for Corsica), commune, order.
nirs = st.builds(
    lambda sex, year, month, dept, commune, order: f"{sex}{year:02d}{month:02d}{dept}"
    f"{commune:03d}{order:03d}",
    st.sampled_from("12"), st.integers(0, 99), st.integers(1, 12),
    st.one_of(st.integers(1, 95).map(lambda d: f"{d:02d}"), st.sampled_from(["2A", "2B"])),
    st.integers(1, 999), st.integers(1, 999),
)


def reference_key(nir13: str) -> int:
    """The rule as the INS guide states it, written independently of bridge.ins."""
    digits = nir13.replace("2A", "19").replace("2B", "18")
    return 97 - int(digits) % 97


@given(nirs)
def test_the_key_is_97_minus_the_nir_modulo_97_corsica_included(nir: str) -> None:
    assert nir_key(nir) == reference_key(nir)


@given(nirs)
def test_a_matricule_with_its_key_is_accepted(nir: str) -> None:
    matricule = f"{nir}{reference_key(nir):02d}"
    assert parse_ins(matricule, InsOid.NIR.value) == Ins(matricule, InsOid.NIR)


@given(nirs, st.integers(1, 96))
def test_any_other_key_is_refused(nir: str, shift: int) -> None:
    wrong = (reference_key(nir) + shift) % 97 or 97
    if wrong == reference_key(nir):
        return
    with pytest.raises(IdentityRejected) as caught:
        parse_ins(f"{nir}{wrong:02d}", InsOid.NIR.value)
    assert caught.value.code == "INS_KEY"
    assert "INSi" in caught.value.message_fr


@pytest.mark.parametrize("oid", [o.value for o in InsOid])
def test_the_four_ins_oids_are_known(oid: str) -> None:
    assert parse_ins("279035121518989", oid).oid.value == oid


def test_an_unknown_oid_is_refused() -> None:
    with pytest.raises(IdentityRejected) as caught:
        parse_ins("279035121518989", "1.2.250.1.213.1.4.2")
    assert caught.value.code == "INS_OID"


def test_only_a_qualified_identity_passes() -> None:
    check_identity(make_patient(identity_status=IdentityStatus.QUAL), target=Target.SIMULATOR)


@pytest.mark.parametrize("status", [IdentityStatus.PROV, IdentityStatus.RECUP, IdentityStatus.VALI])
def test_other_statuses_are_held_with_a_sentence_that_says_what_to_do(
        status: IdentityStatus) -> None:
    with pytest.raises(IdentityRejected) as caught:
        check_identity(make_patient(identity_status=status), target=Target.SIMULATOR)
    message = caught.value.message_fr
    assert caught.value.code == f"IDENTITY_{status.value}"
    assert f"statut {status.value}" in message
    assert "réexportez le document" in message
    assert message.endswith(".")


def test_test_identities_go_to_the_simulator_but_never_to_production() -> None:
    patient = make_patient()
    assert patient.ins.oid is InsOid.NIR_TEST
    check_identity(patient, target=Target.SIMULATOR)
    with pytest.raises(IdentityRejected) as caught:
        check_identity(patient, target=Target.PRODUCTION)
    assert caught.value.code == "INS_TEST_IN_PRODUCTION"
    real = dataclasses.replace(patient, ins=Ins(patient.ins.matricule, InsOid.NIR))
    check_identity(real, target=Target.PRODUCTION)


def test_a_patient_who_opposed_is_never_fed() -> None:
    check_not_opposed(None)
    check_not_opposed(PatientRecord("279035121518989", False, None, None))
    with pytest.raises(IdentityRejected) as caught:
        check_not_opposed(PatientRecord("279035121518989", True, dt.datetime.now(dt.UTC), None))
    assert caught.value.code == "PATIENT_OPPOSED"
    assert "dmp-bridge cancel" in caught.value.message_fr


def test_consultation_consent_lasts_twelve_months() -> None:
    given_on = dt.date(2026, 1, 15)
    record = PatientRecord("279035121518989", False, None, given_on)
    assert record.consent_valid_on(dt.date(2026, 12, 31))
    assert record.consent_expires_on() == dt.date(2027, 1, 15)
    assert not record.consent_valid_on(dt.date(2027, 1, 15))
    assert not PatientRecord("279035121518989", False, None, None).consent_valid_on(given_on)
