"""Embedding cost at import: 500 papers, as a worker process embeds them.

    .venv/bin/python -m bench.embedding [--papers 500]

Imports the two sample feeds' papers into a throwaway SQLite database (repeated, with a
number in each title, up to --papers), then embeds and scores them the way an import
does (``matching.embed_and_rescore``), in this process with the Celery app loaded, as in
a worker. Prints the time, the rate and the process's peak RSS (VmHWM).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="paperboy-embedding-") as folder:
        os.environ["DJANGO_SETTINGS_MODULE"] = "paperboy.settings"
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
        os.environ.pop("REDIS_URL", None)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        import paperboy.celery  # noqa: F401 - loaded as in a worker
        from papers import embeddings, matching
        from papers.importers import parse
        from papers.models import Paper

        call_command("migrate", verbosity=0)
        records = [
            record
            for name in ("trending-papers-page.txt", "hf-daily-papers-2026-08-21.json")
            for record in parse((ROOT / "samples" / name).read_bytes())
        ]
        papers = Paper.objects.bulk_create(
            Paper(
                title=f"{records[n % len(records)].title} ({n})",
                title_key=f"bench-{n}",
                abstract=records[n % len(records)].abstract,
            )
            for n in range(args.papers)
        )
        started = time.perf_counter()
        embeddings.encoder()
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        matching.embed_and_rescore(papers)
        elapsed = time.perf_counter() - started
        name, problem = embeddings.status()
    print(f"model: {name}{' (' + problem + ')' if problem else ''}, loaded in {loaded:.1f} s")
    print(
        f"{args.papers} papers embedded and scored in {elapsed:.1f} s "
        f"({1000 * elapsed / args.papers:.1f} ms a paper); peak RSS {_peak_rss_mb():.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
