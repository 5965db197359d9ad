"""The feeds Paperboy imports on its own schedule, and how each one fared.

By default these are Hugging Face's daily papers, today's and the trending sort
(``PAPERBOY_FEED_URLS``); ``PAPERBOY_ARXIV_CATEGORIES`` adds arXiv's newest papers in
those categories. A fetch that fails (offline, the source down) is recorded as a failed
import run and tried again later, a little later each time; content that does not
parse is not tried again before the next scheduled import, since it would not parse
then either.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from django.conf import settings
from django.utils import timezone

from papers import importers
from papers.models import ImportRun

log = logging.getLogger(__name__)

ARXIV_API = "https://export.arxiv.org/api/query"
# The newest papers of the chosen categories per fetch: a busy category (cs.LG) has a
# few hundred new papers on a weekday, and the import keeps what it has already seen.
ARXIV_RESULTS = 200
# Tries after a failed fetch. Each waits at least half of RETRY_DELAY and at most that
# plus RETRY_DELAY * 2**attempt, at random (jitter): all four within 20 minutes, well
# inside the hourly schedule.
RETRIES = 4
RETRY_DELAY = 60


def arxiv_url(categories: list[str]) -> str:
    query = " OR ".join(f"cat:{category}" for category in categories)
    return f"{ARXIV_API}?" + urlencode(
        {
            "search_query": query,
            "sortBy": "submittedDate",
            "sortOrder": "descending",
            "max_results": ARXIV_RESULTS,
        }
    )


def urls() -> list[str]:
    """Every feed the schedule imports, in order."""
    found = list(settings.PAPERBOY_FEED_URLS)
    if settings.PAPERBOY_ARXIV_CATEGORIES:
        found.append(arxiv_url(settings.PAPERBOY_ARXIV_CATEGORIES))
    return found


def describe(url: str) -> str:
    """A feed in words, for the dashboard and the start-up banner."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.hostname == "huggingface.co" and parts.path.rstrip("/") == "/api/daily_papers":
        return (
            "Hugging Face trending papers"
            if query.get("sort") == ["trending"]
            else "Hugging Face daily papers"
        )
    if url.startswith(ARXIV_API + "?"):
        categories = query.get("search_query", [""])[0].replace("cat:", "").split(" OR ")
        return "arXiv: " + ", ".join(categories)
    return parts.netloc + parts.path


@dataclass(frozen=True)
class FeedStatus:
    url: str
    name: str
    last_success: ImportRun | None
    last_failure: ImportRun | None

    @property
    def failing(self) -> bool:
        """Failed since it last succeeded (or never succeeded)."""
        if self.last_failure is None:
            return False
        return self.last_success is None or self.last_failure.pk > self.last_success.pk


def statuses() -> list[FeedStatus]:
    """Each configured feed with its last successful and its last failed import."""
    found = []
    for url in urls():
        runs = ImportRun.objects.filter(source=_source(url))
        found.append(
            FeedStatus(
                url=url,
                name=describe(url),
                last_success=runs.filter(status=ImportRun.Status.SUCCEEDED).first(),
                last_failure=runs.filter(status=ImportRun.Status.FAILED).first(),
            )
        )
    return found


def never_tried() -> bool:
    """Whether a configured feed has no import run at all, failed or not."""
    sources = [_source(url) for url in urls()]
    tried = ImportRun.objects.filter(source__in=sources).values_list("source", flat=True)
    return not set(tried).issuperset(sources)


def _source(url: str) -> str:
    """The feed as its import runs name it (``ImportRun.source`` holds 1,000 characters)."""
    return url[:1000]


def import_feed(url: str, attempt: int = 0) -> tuple[str, float | None]:
    """Import one feed: what happened, in words, and when to try again (seconds), or
    None. Never raises: one broken feed does not stop the others, nor the worker."""
    try:
        return str(importers.import_source(url)), None
    except importers.ImportFailed as exc:
        if not exc.unreachable or exc.run is None:
            return f"failed: {exc}", None
        if attempt >= RETRIES:
            note = "Not tried again before the next scheduled import."
            retry_in = None
        else:
            # Exponential, with full jitter so that installations do not retry in step.
            spread = RETRY_DELAY * 2**attempt
            retry_in = RETRY_DELAY / 2 + random.uniform(0, spread)  # noqa: S311 - not security
            note = f"Trying again in about {_minutes(retry_in)}."
        ImportRun.objects.filter(pk=exc.run.pk).update(error=f"{exc.run.error}\n{note}")
        return f"failed: {exc} ({note})", retry_in
    except Exception as exc:  # a bug or a busy database: record it, go on with the next
        log.exception("importing %s", url)
        ImportRun.objects.create(
            source=_source(url),
            format="auto",
            status=ImportRun.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:10_000],
            started_at=timezone.now(),
        )
        return f"failed: {type(exc).__name__}: {exc}", None


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
