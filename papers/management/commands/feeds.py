"""Which feeds the schedule imports, and how each fared: ``make run`` prints it."""

from django.core.management.base import BaseCommand
from django_celery_beat.models import PeriodicTask

from papers import feeds

TASK = "papers.import_feeds"


class Command(BaseCommand):
    help = "Show the feeds imported on a schedule (PAPERBOY_FEED_URLS, PAPERBOY_ARXIV_CATEGORIES)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--banner", action="store_true", help="one line, for the start-up banner"
        )

    def handle(self, *args, banner=False, **options):
        statuses = feeds.statuses()
        schedule = PeriodicTask.objects.filter(task=TASK).first()
        if not statuses:
            state = "off (PAPERBOY_FEED_URLS is empty)"
        elif schedule is None or not schedule.enabled:
            state = "off (the periodic task “Import paper feeds” is disabled in the admin)"
        else:
            when = schedule.interval or schedule.crontab or schedule.solar or schedule.clocked
            state = f"on ({when})"
        if banner:
            names = ", ".join(status.name for status in statuses)
            self.stdout.write(f"Feeds:      {state}{': ' + names if statuses else ''}")
            return
        self.stdout.write(f"Feeds {state}.")
        for status in statuses:
            last = status.last_success.finished_at if status.last_success else "never"
            line = f"- {status.name}: {status.url}\n  last imported: {last}"
            if status.last_failure:
                line += f"; last failed: {status.last_failure.finished_at}"
                line += f" ({status.last_failure.error.splitlines()[0][:100]})"
            self.stdout.write(line)
