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
def test_a_worker_consumes_the_import_task_from_the_real_broker(feed_server, samples):
    folder, base = feed_server
    (folder / "daily.json").write_bytes((samples / "hf-daily-papers.json").read_bytes())
    # A queue of our own, so that a worker from `make run` cannot take the task.
    queue_name = f"test{uuid.uuid4().hex}"
    worker = CeleryProcess(
        ["worker", "-Q", queue_name, "--concurrency", "1", "--without-gossip", "--without-mingle"],
        {
            "DATABASE_URL": database_url(connection.settings_dict),
            "PAPERBOY_FEED_URLS": f"{base}/daily.json",
            "PAPERBOY_FETCH_ALLOW": "127.0.0.1",  # the loopback feed server
        },
    )
    try:
        result = import_feeds.apply_async(queue=queue_name)
        worker.wait_for(f"Task papers.import_feeds[{result.id}] succeeded", timeout=90)
    finally:
        worker.stop()

    assert Paper.objects.count() == 3
    run = ImportRun.objects.get()
    assert (run.source, run.status, run.created) == (
        f"{base}/daily.json",
        ImportRun.Status.SUCCEEDED,
        3,
    )
    expected_broker = "redis" if settings.REDIS_URL else "filesystem"
    assert settings.CELERY_BROKER_URL.startswith(expected_broker)
