"""The job state machine and the conservation invariant (DESIGN.md §4)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from bridge.errors import BridgeError
from bridge.jobs import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    Intake,
    JobState,
    check_transition,
    conservation,
    storable,
    storable_text,
)

S = JobState

EXPECTED = {
    (S.QUEUED, S.ACTIVE), (S.QUEUED, S.HELD), (S.QUEUED, S.DEAD),
    (S.ACTIVE, S.DONE), (S.ACTIVE, S.DEFERRED), (S.ACTIVE, S.AMBIGUOUS), (S.ACTIVE, S.HELD),
    (S.ACTIVE, S.DEAD), (S.ACTIVE, S.QUEUED), (S.ACTIVE, S.CORRUPT),
    (S.DEFERRED, S.ACTIVE), (S.DEFERRED, S.DEAD), (S.DEFERRED, S.HELD),
    (S.AMBIGUOUS, S.ACTIVE), (S.AMBIGUOUS, S.DONE), (S.AMBIGUOUS, S.DEFERRED),
    (S.AMBIGUOUS, S.DEAD),
    (S.HELD, S.QUEUED), (S.HELD, S.DEAD),
    (S.DEAD, S.QUEUED),
    (S.CORRUPT, S.DEAD),
}  # fmt: skip


def test_states_are_lower_case_words() -> None:
    assert [s.value for s in JobState] == [
        "queued", "active", "deferred", "ambiguous", "held", "dead", "corrupt", "done",
    ]  # fmt: skip
    assert JobState("held") is JobState.HELD


def test_every_state_has_an_entry() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(JobState)


@pytest.mark.parametrize(("old", "new"), list(itertools.product(JobState, JobState)))
def test_transition_table(old: JobState, new: JobState) -> None:
    if (old, new) in EXPECTED:
        check_transition(old, new)
        assert new in ALLOWED_TRANSITIONS[old]
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(old, new)
        assert (info.value.old, info.value.new) == (old, new)


def test_illegal_transition_is_a_bridge_error_with_french_message() -> None:
    with pytest.raises(BridgeError) as info:
        check_transition(JobState.DONE, JobState.QUEUED)
    err = info.value
    assert isinstance(err, IllegalTransition)
    assert err.code == "ILLEGAL_TRANSITION"
    assert "done" in err.message_fr and "queued" in err.message_fr


def test_done_is_final_and_table_is_read_only() -> None:
    assert ALLOWED_TRANSITIONS[JobState.DONE] == frozenset()
    with pytest.raises(TypeError):
        ALLOWED_TRANSITIONS[JobState.DONE] = frozenset({JobState.QUEUED})  # type: ignore[index]


def test_conservation() -> None:
    counts = dict.fromkeys(JobState, 0)
    assert conservation(counts, 0)
    counts[JobState.DONE] = 3
    counts[JobState.HELD] = 1
    counts[JobState.CORRUPT] = 1
    assert conservation(counts, 5)
    assert not conservation(counts, 6)  # a job vanished
    assert not conservation(counts, 4)  # a job counted twice
    assert conservation({JobState.QUEUED: 2}, 2)  # missing states count as zero
    assert not conservation({JobState.QUEUED: 3, JobState.DONE: -1}, 2)


def test_storable_text_escapes_only_what_utf8_cannot_carry() -> None:
    assert storable_text("Compte-rendu é 🩺.pdf") == "Compte-rendu é 🩺.pdf"
    odd = b"soins-\xff.pdf".decode("utf-8", "surrogateescape")  # how Linux names reach Python
    assert storable_text(odd) == "soins-\\udcff.pdf"
    assert storable_text(odd) == storable_text(odd)  # stable: the same file is the same key


def test_storable_leaves_a_clean_intake_as_it_is_and_fixes_every_text_of_another() -> None:
    at = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    clean = Intake("folder", "a.pdf", "k", b"%PDF", b"{}", at, patient_key="p")
    assert storable(clean) is clean
    odd = b"\xff".decode("utf-8", "surrogateescape")
    fixed = storable(Intake("folder", odd, odd, b"%PDF", b"{}", at, author_key=odd))
    assert (fixed.source_ref, fixed.idempotency_key, fixed.author_key) == ("\\udcff",) * 3
    assert (fixed.payload, fixed.received_at, fixed.patient_key) == (b"%PDF", at, None)
