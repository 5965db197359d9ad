"""When a subscriber's next digest is due and which period it belongs to: the local
hour and weekday kept across daylight saving time."""

import datetime as dt

import pytest

from subscriptions.models import Subscriber
from subscriptions.schedule import next_due, period_key

UTC = dt.UTC


def at(*args):
    return dt.datetime(*args, tzinfo=UTC)


def subscriber(**fields):
    return Subscriber(
        **({"frequency": "daily", "send_hour": 8, "timezone": "UTC", "weekday": 0} | fields)
    )


@pytest.mark.parametrize(
    ("zone", "after", "expected"),
    [
        # Paris springs forward on 29 March 2026: 8:00 is 07:00 UTC before, 06:00 after.
        ("Europe/Paris", at(2026, 3, 28, 7, 0), at(2026, 3, 29, 6, 0)),
        ("Europe/Paris", at(2026, 3, 27, 12, 0), at(2026, 3, 28, 7, 0)),
        # ... and falls back on 25 October 2026.
        ("Europe/Paris", at(2026, 10, 24, 6, 0), at(2026, 10, 25, 7, 0)),
        # New York springs forward on 8 March 2026: 8:00 is 13:00 UTC before, 12:00 after.
        ("America/New_York", at(2026, 3, 7, 13, 0), at(2026, 3, 8, 12, 0)),
        ("America/New_York", at(2026, 11, 1, 11, 59), at(2026, 11, 1, 13, 0)),
        ("Asia/Tokyo", at(2026, 11, 27, 23, 0), at(2026, 11, 28, 23, 0)),
    ],
)
def test_a_daily_digest_stays_at_the_local_hour_across_dst(zone, after, expected):
    due = next_due(subscriber(timezone=zone), after)
    assert due == expected
    assert due.astimezone(subscriber(timezone=zone).zoneinfo).hour == 8


@pytest.mark.parametrize(
    ("zone", "after", "expected"),
    [
        # Sundays at 8:00 in Paris, over the spring change.
        ("Europe/Paris", at(2026, 3, 22, 7, 0), at(2026, 3, 29, 6, 0)),
        ("Europe/Paris", at(2026, 3, 22, 6, 59), at(2026, 3, 22, 7, 0)),
        # Sundays at 8:00 in New York, over the autumn change (1 November 2026).
        ("America/New_York", at(2026, 10, 25, 12, 0), at(2026, 11, 1, 13, 0)),
    ],
)
def test_a_weekly_digest_keeps_its_weekday_and_hour_across_dst(zone, after, expected):
    assert next_due(subscriber(timezone=zone, frequency="weekly", weekday=6), after) == expected


def test_an_hour_skipped_by_the_clock_change_is_sent_an_hour_later():
    # 02:00 does not exist in Paris on 29 March 2026.
    due = next_due(subscriber(timezone="Europe/Paris", send_hour=2), at(2026, 3, 28, 12))
    assert due == at(2026, 3, 29, 1, 0)  # 03:00 local, summer time


def test_an_hour_repeated_by_the_clock_change_is_sent_once():
    sub = subscriber(timezone="Europe/Paris", send_hour=2)
    first = next_due(sub, at(2026, 10, 24, 12))
    assert first == at(2026, 10, 25, 0, 0)  # the first 02:00 (summer time)
    assert next_due(sub, first) == at(2026, 10, 26, 1, 0)


def test_periods_are_local_days_or_iso_weeks():
    paris = subscriber(timezone="Europe/Paris")
    assert period_key(paris, at(2026, 11, 28, 23, 30)) == "2026-11-29"
    weekly = subscriber(timezone="Europe/Paris", frequency="weekly")
    assert period_key(weekly, at(2026, 11, 28, 7)) == "2026-W48"
