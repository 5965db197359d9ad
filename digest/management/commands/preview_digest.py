from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from digest.previews import preview
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
        rendered = preview(subscriber, timezone.now())
        if rendered is None:
            self.stdout.write(f"{subscriber.email} has nothing new: no digest would be sent.")
            return
        subject, text, html = rendered
        folder = Path(output or settings.VAR_DIR / "previews")
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"digest-{subscriber.pk}"
        stem.with_suffix(".html").write_text(html)
        stem.with_suffix(".txt").write_text(f"Subject: {subject}\n\n{text}")
        self.stdout.write(f"{subject}\n{stem}.html\n{stem}.txt")
