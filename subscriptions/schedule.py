"""When a subscriber's digest is due, in their own time zone."""

import datetime as dt
from zoneinfo import ZoneInfo


def next_due(subscriber, after: dt.datetime) -> dt.datetime:
    """The first send time strictly after ``after``, in UTC.

    The wall-clock hour is built in the subscriber's zone, so it stays at 8:00
    local across DST changes. An hour skipped by a spring-forward change is
    sent an hour later; an hour repeated by a fall-back change is sent once.
    """
    zone = ZoneInfo(subscriber.timezone)
    day = after.astimezone(zone).date()
    for offset in range(9):
        candidate_day = day + dt.timedelta(days=offset)
        if subscriber.frequency == "weekly" and candidate_day.weekday() != subscriber.weekday:
            continue
        local = dt.datetime.combine(candidate_day, dt.time(subscriber.send_hour), tzinfo=zone)
        due = local.astimezone(dt.UTC)
        if due > after:
            return due
    raise AssertionError("a weekly schedule always has a day within 8 days")


def period_key(subscriber, due: dt.datetime) -> str:
    """The period a send time belongs to: the local day, or the ISO week for weekly digests."""
    local = due.astimezone(ZoneInfo(subscriber.timezone)).date()
    if subscriber.frequency == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.isoformat()
