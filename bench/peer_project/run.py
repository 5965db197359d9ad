"""Inside the peer virtualenv: build one newsletter for N subscribers and send it the way
django-newsletter's cron job does (the submit_newsletter command).

    python run.py SUBSCRIBERS ARTICLES_JSON

Prints one JSON line on stdout: the seconds the sending took, the errors it logged and
the versions that ran. Everything else goes to stderr.
"""

import datetime as dt
import json
import logging
import os
import sys
import time
from importlib.metadata import version

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django

django.setup()

from django.contrib.sites.models import Site  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402
from newsletter.models import Article, Message, Newsletter, Submission, Subscription  # noqa: E402


class ErrorCounter(logging.Handler):
    """Submission.send_message logs a failed send and carries on: count them."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.count = 0
        self.first = None

    def emit(self, record):
        self.count += 1
        self.first = self.first or record.getMessage()


def build(subscribers: int, articles: list[dict]) -> Submission:
    call_command("migrate", verbosity=0)
    Site.objects.filter(pk=1).update(domain="papers.bench.example", name="Paperboy bench")
    newsletter = Newsletter.objects.create(
        title="Trending papers", slug="papers", email="newsletter@bench.example", sender="Bench"
    )
    now = timezone.now()
    # The state a confirmed (activated) subscription ends up in, without its save()'s
    # two queries per row.
    Subscription.objects.bulk_create(
        (
            Subscription(
                newsletter=newsletter,
                email_field=f"peer{n}@bench.example",
                name_field=f"Reader {n}",
                subscribed=True,
                subscribe_date=now,
            )
            for n in range(subscribers)
        ),
        batch_size=2000,
    )
    message = Message.objects.create(
        title="Your papers this week", slug="week", newsletter=newsletter
    )
    Article.objects.bulk_create(
        Article(post=message, sortorder=10 * (n + 1), **article)
        for n, article in enumerate(articles)
    )
    submission = Submission.from_message(message)
    # What "Submit" in its admin does; the cron job then sends what is prepared and due.
    submission.prepared = True
    submission.publish_date = now - dt.timedelta(seconds=1)
    submission.save()
    return submission


def main() -> None:
    subscribers = int(sys.argv[1])
    with open(sys.argv[2]) as file:
        articles = json.load(file)
    started = time.perf_counter()
    submission = build(subscribers, articles)
    built = time.perf_counter() - started
    print(f"peer: built {subscribers:,} subscriptions in {built:.1f} s", file=sys.stderr)
    errors = ErrorCounter()
    logging.getLogger("newsletter").addHandler(errors)
    started = time.perf_counter()
    call_command("submit_newsletter", verbosity=0)
    seconds = time.perf_counter() - started
    submission.refresh_from_db()
    result = {
        "seconds": seconds,
        "sent": submission.sent,
        "errors": errors.count,
        "first_error": errors.first,
        "versions": {
            name: version(name) for name in ("Django", "django-newsletter", "sorl-thumbnail")
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
