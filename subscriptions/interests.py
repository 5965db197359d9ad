"""Interest topics that readers typed, once nobody follows them."""

import datetime as dt

from django.conf import settings

from papers.models import PaperTopic, Topic


def prune_interests(now: dt.datetime) -> int:
    """Delete the interest topics nobody follows any more (every subscriber who typed
    them left or changed their mind) and no curator touched (no pin, no exclusion),
    once older than PAPERBOY_INTEREST_GRACE_DAYS: each one costs scoring at every
    import. Returns how many went."""
    cutoff = now - dt.timedelta(days=settings.PAPERBOY_INTEREST_GRACE_DAYS)
    curated = PaperTopic.objects.exclude(curation="").values("topic")
    orphans = (
        Topic.objects.interests()
        .filter(subscribers__isnull=True, created_at__lt=cutoff)
        .exclude(pk__in=curated)
    )
    deleted = Topic.objects.filter(pk__in=list(orphans.values_list("pk", flat=True))).delete()
    return deleted[1].get(Topic._meta.label, 0)
