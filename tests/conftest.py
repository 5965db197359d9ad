import functools
import http.server
import importlib
import threading
from pathlib import Path

import pytest

from tests.support.paths import SAMPLES

pytest_plugins = [
    "tests.support.smtp",
    "tests.support.esp",
    "tests.support.browser",
    "tests.support.faults",
]


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture(autouse=True)
def _no_feeds_from_the_internet(settings):
    """The default feeds are Hugging Face's: no test reaches them (a test that imports
    feeds names its own loopback ones; workers get the same from celery_env)."""
    settings.PAPERBOY_FEED_URLS = []
    settings.PAPERBOY_ARXIV_CATEGORIES = []


@pytest.fixture(autouse=True)
def _no_slow_down_remembered(monkeypatch):
    """Each test starts as a fresh worker process: no 421 or 429 met before it limits
    its messages in flight (digest.pacing)."""
    from digest import pacing

    monkeypatch.setattr(pacing, "_allowed", None)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def feed_server(tmp_path, settings):
    """A real HTTP server on loopback serving a folder; yields (folder, base URL).
    Loopback is allowed as a feed host for the test (core.fetch refuses it otherwise)."""
    settings.PAPERBOY_FETCH_ALLOW = ["127.0.0.1"]
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def eager_celery(request):
    """Tasks run in the test's own process, unless the test starts a real worker."""
    if request.node.get_closest_marker("celery_worker"):
        yield
        return
    from paperboy.celery import app

    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = app.conf.task_eager_propagates = False


@pytest.fixture(autouse=True)
def lexical_unless_semantic(request, settings):
    """Tests of other things match by words alone, as they were written for, and skip
    the 35 ms per paper of embedding; tests marked ``semantic`` use the real model."""
    if not request.node.get_closest_marker("semantic"):
        settings.PAPERBOY_MATCHING = "lexical"
    # Each test's papers are its own: a background read by an earlier test (whose rows
    # were rolled back, and whose ids SQLite may hand out again) must not be reused.
    from papers import semantic

    semantic._background_cache.clear()


@pytest.fixture(autouse=True)
def generous_rate_limits(settings):
    """Counts live in a cache shared by the whole run (Redis in CI): tests that check
    the limits lower them and use addresses and IPs of their own."""
    settings.PAPERBOY_SIGNUPS_PER_IP_PER_HOUR = 10_000
    settings.PAPERBOY_SIGNUPS_PER_ADDRESS_PER_HOUR = 10_000


@pytest.fixture
def starter_topics(django_db_blocker):
    """The curated topics of the data migration, for transactional tests: each of those
    ends by emptying every table, migration data included."""
    from django.apps import apps

    migration = importlib.import_module("papers.migrations.0002_starter_topics")
    with django_db_blocker.unblock():
        migration.add_topics(apps, None)
