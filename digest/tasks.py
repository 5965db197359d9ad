from celery import shared_task

from digest import importers


@shared_task(name="digest.import_feeds")
def import_feeds() -> dict[str, str]:
    # No retry: a feed that is down now is fetched again at the next beat tick,
    # and each run is recorded as an ImportRun for curators to see.
    return importers.import_feeds()
