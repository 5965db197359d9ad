"""A real Celery worker process consumes a task from the real broker: Redis when
REDIS_URL is set (CI), the filesystem broker otherwise."""

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from digest.models import ImportRun, Paper
from digest.tasks import import_feeds

ROOT = Path(__file__).resolve().parent.parent


def database_url(db: dict) -> str:
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """`celery worker` in a child process, its output read line by line."""

    def __init__(self, queue_name: str, extra_env: dict[str, str]):
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "digest",
                "worker",
                "-Q",
                queue_name,
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=os.environ | {"DJANGO_SETTINGS_MODULE": "digest.settings"} | extra_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.output.append(line)
            if text in line:
                return line
        raise AssertionError(f"worker never logged {text!r}; it said:\n{''.join(self.output)}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join()
        self.process.stdout.close()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_consumes_the_import_task_from_the_real_broker(feed_server, samples):
    folder, base = feed_server
    (folder / "daily.json").write_bytes((samples / "hf-daily-papers.json").read_bytes())
    # A queue of our own, so that a worker from `make run` cannot take the task.
    queue_name = f"test{uuid.uuid4().hex}"
    worker = Worker(
        queue_name,
        {
            "DATABASE_URL": database_url(connection.settings_dict),
            "PAPERBOY_FEED_URLS": f"{base}/daily.json",
        },
    )
    try:
        result = import_feeds.apply_async(queue=queue_name)
        worker.wait_for(f"Task digest.import_feeds[{result.id}] succeeded", timeout=90)
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
