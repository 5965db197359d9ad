"""The figures on the admin's front page: who is subscribed, what went out, what came in."""

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from digest.models import Digest, SchedulingPass
from papers import embeddings, feeds, matching
from papers.models import ImportRun
from subscriptions import deliverability
from subscriptions.models import Subscriber, Suppression

CHART_DAYS = 30
# The chart's drawing area, in SVG user units (it scales to the page width).
CHART_WIDTH, CHART_HEIGHT = 600, 120


@dataclass
class Bar:
    day: dt.date
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass
class Chart:
    title: str
    bars: list[Bar]
    peak: int
    total: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def _chart(title: str, days: list[dt.date], counts: dict[dt.date, int]) -> Chart:
    peak = max(counts.values(), default=0)
    slot = CHART_WIDTH / len(days)
    bars = []
    for index, day in enumerate(days):
        value = counts.get(day, 0)
        # A bar of 1 px for any non-zero day, so small counts beside a big one still show.
        height = max(1.0, CHART_HEIGHT * value / peak) if value else 0.0
        bars.append(
            Bar(
                day=day,
                value=value,
                x=round(index * slot + slot * 0.1, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(slot * 0.8, 2),
                height=round(height, 2),
            )
        )
    return Chart(title=title, bars=bars, peak=peak, total=sum(counts.values()))


def _per_day(queryset, field: str, since: dt.datetime) -> dict[dt.date, int]:
    tz = timezone.get_current_timezone()
    rows = (
        queryset.filter(**{f"{field}__gte": since})
        .annotate(day=TruncDate(field, tzinfo=tz))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return dict(rows)


def _matching() -> dict:
    """Whether matching by meaning works, and what still waits for a vector."""
    model, problem = embeddings.status()
    papers, topics = matching.stale_counts() if not problem else (0, 0)
    return {"model": model, "problem": problem, "stale_papers": papers, "stale_topics": topics}


def figures(now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localdate(now)
    start_of_today = timezone.make_aware(dt.datetime.combine(today, dt.time()))
    days = [today - dt.timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    since = timezone.make_aware(dt.datetime.combine(days[0], dt.time()))

    subscribers = dict(Subscriber.objects.order_by().values_list("status").annotate(n=Count("pk")))
    digests_today = dict(
        Digest.objects.filter(scheduled_for__gte=start_of_today, scheduled_for__lte=now)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    rate, complaints, delivered = deliverability.complaint_rate()
    return {
        "subscribers": {
            status: subscribers.get(status, 0)
            for status in (
                Subscriber.Status.ACTIVE,
                Subscriber.Status.PENDING,
                Subscriber.Status.PAUSED,
                Subscriber.Status.SUPPRESSED,
                Subscriber.Status.UNSUBSCRIBED,
            )
        },
        "suppressed_addresses": Suppression.objects.active().count(),
        "digests_today": {
            status: digests_today.get(status, 0)
            for status in (
                Digest.Status.SENT,
                Digest.Status.UNKNOWN,
                Digest.Status.SKIPPED,
                Digest.Status.FAILED,
                Digest.Status.SUPPRESSED,
            )
        },
        # Claimed or sending: on their way, or waiting out a retry.
        "digests_in_flight": digests_today.get(Digest.Status.CLAIMED, 0)
        + digests_today.get(Digest.Status.SENDING, 0),
        "complaint_rate": rate,
        "complaints": complaints,
        "delivered": delivered,
        "complaint_rate_high": rate is not None and rate > settings.PAPERBOY_COMPLAINT_RATE_WARNING,
        "complaint_percent": None if rate is None else rate * 100,
        "complaint_warning_percent": f"{settings.PAPERBOY_COMPLAINT_RATE_WARNING * 100:g}",
        # The delivery log's own date links, for "today".
        "today_query": urlencode(
            {
                "scheduled_for__year": today.year,
                "scheduled_for__month": today.month,
                "scheduled_for__day": today.day,
            }
        ),
        "feeds": feeds.statuses(),
        "last_imports": list(ImportRun.objects.all()[:3]),
        "matching": _matching(),
        "last_pass": SchedulingPass.objects.first(),
        "charts": [
            _chart("Sign-ups per day", days, _per_day(Subscriber.objects, "created_at", since)),
            _chart(
                "Digests sent per day",
                days,
                _per_day(Digest.objects.filter(sent_at__isnull=False), "sent_at", since),
            ),
        ],
    }
