"""Certificate expiry warnings (bridge/cert_expiry.py): 30, 7 and 1 day(s) before the end of
validity, then "expired"; each announced once, the caller keeping the announced set."""

from __future__ import annotations

import datetime as dt

import pytest

from bridge.cert_expiry import (
    CertificateValidity,
    ExpiryCheck,
    announcement_key,
    expiry_warnings,
)

END = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2), "CEST")
RENEWAL = ("Renouvelez-le sur le portail IGC Santé de l'ANS, puis remplacez pki/sign.p12 par le "
           "nouveau fichier et redémarrez le service.")
SIGN = CertificateValidity("certificat de signature (ORG SIGN)", END, RENEWAL)


def check(now: dt.datetime, announced: frozenset[str] = frozenset(),
          *validities: CertificateValidity) -> ExpiryCheck:
    return expiry_warnings(validities or (SIGN,), now, announced)


def before_end(days: float) -> dt.datetime:
    return END - dt.timedelta(days=days)


def test_thirty_one_days_before_nothing_is_due() -> None:
    result = check(before_end(31))

    assert result.warnings == ()
    assert result.announced == frozenset()


def test_thirty_days_before_the_thirty_day_warning_names_role_date_and_what_to_do() -> None:
    result = check(before_end(30))

    [warning] = result.warnings
    assert warning.threshold_days == 30 and not warning.expired
    assert warning.event == "certificate_expiring"
    assert warning.role == SIGN.role and warning.not_after == END
    assert warning.message_fr == (
        "Le certificat de signature (ORG SIGN) expire le 15/06/2026, dans 30 jours. Sans "
        "certificat valide, plus aucun document ne part vers le DMP (ils attendent dans la "
        f"file). {RENEWAL}")
    assert result.announced == {warning.key} == {announcement_key(SIGN, 30)}


def test_a_warning_already_announced_is_not_repeated() -> None:
    first = check(before_end(30))

    assert check(before_end(30), first.announced).warnings == ()
    later = check(before_end(8), first.announced)
    assert later.warnings == () and later.announced == first.announced


def test_seven_one_and_expired_come_each_in_turn() -> None:
    announced = check(before_end(30)).announced

    seven = check(before_end(7), announced)
    [warning] = seven.warnings
    assert warning.threshold_days == 7
    assert warning.message_fr.startswith("Urgent : le certificat de signature (ORG SIGN) expire "
                                         "le 15/06/2026, dans 7 jours.")

    one = check(before_end(1), seven.announced)
    [warning] = one.warnings
    assert warning.threshold_days == 1 and "dans 1 jour." in warning.message_fr

    assert check(before_end(1 / 24), one.announced).warnings == ()

    expired = check(END + dt.timedelta(seconds=1), one.announced)
    [warning] = expired.warnings
    assert warning.expired and warning.threshold_days is None
    assert warning.event == "certificate_expired"
    assert warning.message_fr.startswith(
        "Le certificat de signature (ORG SIGN) a expiré le 15/06/2026 à 12:00 UTC.")
    assert RENEWAL in warning.message_fr

    assert check(END + dt.timedelta(days=40), expired.announced).warnings == ()
    assert expired.announced == {announcement_key(SIGN, days) for days in (30, 7, 1, None)}


def test_a_service_checking_every_hour_announces_each_threshold_exactly_once() -> None:
    announced: frozenset[str] = frozenset()
    shown: list[int | None] = []
    now = before_end(40)
    while now < END + dt.timedelta(days=5):
        result = check(now, announced)
        shown += [warning.threshold_days for warning in result.warnings]
        announced = result.announced
        now += dt.timedelta(hours=1)

    assert shown == [30, 7, 1, None]


def test_the_last_day_says_less_than_24_hours_with_the_time() -> None:
    [warning] = check(before_end(0.5)).warnings

    assert warning.threshold_days == 1
    assert "expire le 15/06/2026 à 12:00 UTC, dans moins de 24 heures." in warning.message_fr


def test_after_a_long_stop_only_the_most_urgent_warning_is_shown() -> None:
    result = check(before_end(5))

    [warning] = result.warnings
    assert warning.threshold_days == 7
    assert result.announced == {announcement_key(SIGN, 30), announcement_key(SIGN, 7)}
    assert check(before_end(4), result.announced).warnings == ()


def test_first_seen_already_expired_gives_only_the_expired_state() -> None:
    result = check(END + dt.timedelta(days=3))

    [warning] = result.warnings
    assert warning.expired
    assert len(result.announced) == 4


def test_a_renewed_certificate_starts_afresh() -> None:
    old = check(END + dt.timedelta(days=1)).announced
    renewed = CertificateValidity(SIGN.role, END.replace(year=2029), RENEWAL)

    assert check(END + dt.timedelta(days=1), old, renewed).warnings == ()
    [warning] = check(renewed.not_after - dt.timedelta(days=29), old, renewed).warnings
    assert warning.threshold_days == 30 and "15/06/2029" in warning.message_fr


def test_each_certificate_is_followed_on_its_own() -> None:
    # Usable for a CPS card's certificates as well as for the establishment ones.
    card = CertificateValidity("certificat de signature de la carte CPS", END + dt.timedelta(
        days=20), "Commandez une nouvelle carte CPS auprès de l'ANS.")

    result = check(before_end(10), frozenset(), SIGN, card)

    assert [(w.role, w.threshold_days) for w in result.warnings] == [
        (SIGN.role, 30), (card.role, 30)]
    result = check(before_end(6), result.announced, SIGN, card)
    [warning] = result.warnings
    assert warning.role == SIGN.role and warning.threshold_days == 7
    result = check(before_end(0.5), result.announced, SIGN, card)
    [warning] = result.warnings
    assert warning.role == SIGN.role and warning.threshold_days == 1
    [signer_gone, warning] = check(END + dt.timedelta(days=13), result.announced, SIGN,
                                   card).warnings
    assert signer_gone.role == SIGN.role and signer_gone.expired
    assert warning.role == card.role and warning.threshold_days == 7
    assert "Commandez une nouvelle carte CPS" in warning.message_fr


def test_now_in_local_time_counts_the_same_instant() -> None:
    local = before_end(30).astimezone(PARIS_SUMMER)

    assert check(local) == check(before_end(30))
    assert check(local + dt.timedelta(seconds=-1)).warnings == ()


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(before_end(30).replace(tzinfo=None))
    naive = CertificateValidity(SIGN.role, END.replace(tzinfo=None), RENEWAL)
    with pytest.raises(ValueError, match="timezone-aware"):
        check(before_end(30), frozenset(), naive)
