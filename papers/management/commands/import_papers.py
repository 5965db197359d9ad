import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from papers.importers import FORMATS, ImportFailed, import_source


class Command(BaseCommand):
    help = (
        "Import papers from a file or URL: a trending-papers page, "
        "Hugging Face daily-papers JSON or arXiv Atom."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="a file path or an http(s) URL")
        parser.add_argument("--format", choices=("auto", *FORMATS), default="auto")

    def handle(self, source, format, verbosity, **options):
        bar = None

        def progress(records):
            nonlocal bar
            bar = tqdm(records, unit="paper", file=sys.stderr, disable=verbosity < 1 or None)
            return bar

        try:
            summary = import_source(source, format, progress=progress)
        except ImportFailed as exc:
            for error in exc.errors:
                self.stderr.write(f"  {error}")
            raise CommandError(
                f"{source}: {exc}. Nothing was imported "
                f"(0 created, 0 updated, 0 unchanged, {exc.rejected} rejected)."
            ) from None
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(self.style.SUCCESS(f"{source}: {summary}."))
