"""A real Celery worker process consumes a task from the real broker: Redis when
REDIS_URL is set (CI), the filesystem broker otherwise."""

import uuid

import pytest
from django.conf import settings
from django.db import connection

from papers.models import ImportRun, Paper
from papers.tasks import import_feeds
from tests.support.processes import CeleryProcess, database_url


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_starting_worker_imports_a_feed_never_tried_through_the_real_broker(feed_server, samples):
    folder, base = feed_server
    (folder / "daily.json").write_bytes((samples / "hf-daily-papers.json").read_bytes())
    # A queue of our own, so that a worker from `make run` cannot take the task.
    queue_name = f"test{uuid.uuid4().hex}"
    worker = CeleryProcess(
        ["worker", "-Q", queue_name, "--concurrency", "1", "--without-gossip", "--without-mingle"],
        {
            "DATABASE_URL": database_url(connection.settings_dict),
            "PAPERBOY_QUEUE": queue_name,
            "PAPERBOY_FEED_URLS": f"{base}/daily.json",
            "PAPERBOY_FETCH_ALLOW": "127.0.0.1",  # the loopback feed server
            "PAPERBOY_MATCHING": "lexical",
        },
    )
    try:
        # Queued by the worker itself once ready: the feed was never tried.
        worker.wait_for(r"Task papers.import_feeds\[[-\w]+\] succeeded", timeout=90, regex=True)
        assert Paper.objects.count() == 3
        result = import_feeds.apply_async(queue=queue_name)
        worker.wait_for(f"Task papers.import_feeds[{result.id}] succeeded", timeout=90)
    finally:
        worker.stop()

    assert Paper.objects.count() == 3
    runs = list(
        ImportRun.objects.order_by("pk").values_list("source", "status", "created", "unchanged")
    )
    assert runs == [
        (f"{base}/daily.json", ImportRun.Status.SUCCEEDED, 3, 0),
        (f"{base}/daily.json", ImportRun.Status.SUCCEEDED, 0, 3),
    ]
    expected_broker = "redis" if settings.REDIS_URL else "filesystem"
    assert settings.CELERY_BROKER_URL.startswith(expected_broker)
