from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from digest import emails
from digest.compose import compose
from digest.models import Digest
from subscriptions.models import Subscriber


class Command(BaseCommand):
    help = "Write the HTML and text of the digest a subscriber would get now. Sends nothing."

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("--output", default=None, help="folder (default: var/previews)")

    def handle(self, address, output, **options):
        subscriber = Subscriber.objects.with_email(address).first()
        if subscriber is None:
            raise CommandError(f"no subscriber with the address {address}")
        now = timezone.now()
        picks = compose(subscriber, until=now)
        if not picks:
            self.stdout.write(f"{subscriber.email} has nothing new: no digest would be sent.")
            return
        # Unsaved: a preview claims nothing and records nothing.
        digest = Digest(subscriber=subscriber, period="preview", scheduled_for=now, pk=0)
        subject, text, html = emails.render_digest(digest, picks)
        folder = Path(output or settings.VAR_DIR / "previews")
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"digest-{subscriber.pk}"
        stem.with_suffix(".html").write_text(html)
        stem.with_suffix(".txt").write_text(f"Subject: {subject}\n\n{text}")
        self.stdout.write(f"{subject}\n{stem}.html\n{stem}.txt")
