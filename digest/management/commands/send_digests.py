import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from digest import scheduling, sending
from digest.compose import compose
from subscriptions.models import Subscriber


class Command(BaseCommand):
    help = "Run one scheduling pass in this process: claim due digests and send them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="print who would get which papers; send nothing"
        )
        parser.add_argument("--email", help="only this subscriber")
        parser.add_argument(
            "--now",
            nargs="?",
            const="now",
            help="treat every active subscriber as due now (or at the given ISO time)",
        )

    def handle(self, dry_run, email, now, verbosity, **options):
        moment = self._moment(now)
        subscribers = Subscriber.objects.active()
        if email:
            subscribers = subscribers.with_email(email)
            if not subscribers.exists():
                raise CommandError(f"no active subscriber with the address {email}")
        if now:
            # Due at the given moment, whatever their schedule says.
            if not dry_run:
                subscribers.filter(Q(next_due_at__gt=moment) | Q(next_due_at__isnull=True)).update(
                    next_due_at=moment
                )
        else:
            subscribers = subscribers.filter(next_due_at__lte=moment)
        if dry_run:
            self._dry_run(subscribers.order_by("pk"), moment)
            return
        sent = skipped = failed = 0
        claimed = [d.pk for s in subscribers.order_by("pk") if (d := scheduling.claim(s, moment))]
        for batch in scheduling.batches(claimed):
            result = sending.send_batch(batch)
            sent, skipped = sent + len(result.sent), skipped + len(result.skipped)
            failed += len(result.failed) + len(result.retry)
            for digest_id in result.retry:
                self.stderr.write(f"digest {digest_id}: {result.last_error} (left for a retry)")
            if verbosity >= 1:
                self.stderr.write(
                    f"  {sent + skipped + failed}/{len(claimed)} digests", ending="\r"
                )
        self.stdout.write(
            f"{len(claimed)} digests claimed: {sent} sent, {skipped} skipped (nothing new), "
            f"{failed} failed."
        )

    def _moment(self, now: str | None) -> dt.datetime:
        if now in (None, "now"):
            return timezone.now()
        moment = parse_datetime(now)
        if moment is None:
            raise CommandError(f"--now: {now!r} is not an ISO date and time")
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)

    def _dry_run(self, subscribers, moment) -> None:
        count = 0
        for subscriber in subscribers:
            count += 1
            picks = compose(subscriber, until=moment)
            self.stdout.write(f"{subscriber.email}: {len(picks)} paper(s)")
            for pick in picks:
                self.stdout.write(f"  {pick.score:6.2f}  {pick.paper.title}")
                self.stdout.write(f"          why: {pick.reason}")
        self.stdout.write(f"Dry run: {count} subscriber(s) due; nothing was sent or recorded.")
