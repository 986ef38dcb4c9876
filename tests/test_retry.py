"""When to try again after a transient failure: exponential backoff with full jitter."""

from __future__ import annotations

import datetime as dt

import pytest

from bridge.retry import RetryPolicy

POLICY = RetryPolicy()
SECOND = dt.timedelta(seconds=1)
JITTERS = [0.0, 0.25, 0.5, 0.999999]


def test_the_defaults_are_30_seconds_doubling_to_one_hour_for_48_attempts() -> None:
    assert (POLICY.first_delay, POLICY.max_delay, POLICY.max_attempts) == (
        30 * SECOND, dt.timedelta(hours=1), 48)


@pytest.mark.parametrize(
    ("attempts", "ceiling_seconds"),
    [(0, 30), (1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (9, 3600), (48, 3600)],
)
def test_the_delay_lies_between_half_the_ceiling_and_the_ceiling(
        attempts: int, ceiling_seconds: int) -> None:
    ceiling = ceiling_seconds * SECOND
    for jitter in JITTERS:
        delay = POLICY.delay(attempts, jitter)
        assert ceiling / 2 <= delay < ceiling
        assert delay == ceiling / 2 + ceiling / 2 * jitter


def test_no_jitter_gives_exactly_half_the_ceiling() -> None:
    assert POLICY.delay(1, 0.0) == 15 * SECOND


def test_the_delay_is_never_immediate() -> None:
    assert min(POLICY.delay(n, 0.0) for n in range(100)) >= 15 * SECOND


def test_the_delay_never_exceeds_the_maximum_even_after_very_many_attempts() -> None:
    for attempts in (10, 31, 32, 100, 10_000):
        assert POLICY.delay(attempts, 0.999999) < POLICY.max_delay


@pytest.mark.parametrize("jitter", JITTERS)
def test_the_delay_never_shrinks_as_attempts_grow(jitter: float) -> None:
    delays = [POLICY.delay(n, jitter) for n in range(60)]
    assert delays == sorted(delays)


def test_jitter_spreads_the_delay_over_the_upper_half() -> None:
    delays = {POLICY.delay(5, j / 10) for j in range(10)}
    assert len(delays) == 10


def test_a_custom_policy_caps_at_its_own_maximum() -> None:
    policy = RetryPolicy(first_delay=10 * SECOND, max_delay=25 * SECOND, max_attempts=3)
    assert [policy.delay(n, 0.0) for n in (1, 2, 3)] == [5 * SECOND, 10 * SECOND, 12.5 * SECOND]


@pytest.mark.parametrize("jitter", [-0.01, 1.0, 1.5, float("nan")])
def test_a_jitter_outside_zero_one_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match=r"jitter must be in \[0, 1\)"):
        POLICY.delay(1, jitter)


def test_attempts_are_exhausted_at_the_maximum() -> None:
    assert not POLICY.exhausted(0)
    assert not POLICY.exhausted(47)
    assert POLICY.exhausted(48)
    assert POLICY.exhausted(49)


def test_the_default_schedule_covers_about_two_days() -> None:
    total = sum((POLICY.delay(n, 0.5) for n in range(1, POLICY.max_attempts)), dt.timedelta())
    assert dt.timedelta(days=1) < total < dt.timedelta(days=3)
