"""Importing by URL never reaches inside the network (core.fetch): loopback, private,
link-local and the cloud's metadata address are refused, directly and by redirect; one
deadline covers the whole fetch; every failure reads the same."""

import http.server
import threading
import time
from collections import Counter
from unittest import mock

import pytest
from django.urls import reverse

from papers.importers import ImportFailed, import_source
from papers.models import ImportRun, Paper

pytestmark = pytest.mark.django_db


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        server = self.server
        server.hits[self.path] += 1
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", server.redirect_to)
            self.end_headers()
        elif self.path == "/trickle":
            self.send_response(200)
            self.end_headers()
            # Never more than a socket timeout apart, never done.
            while not server.stopping.is_set():
                self.wfile.write(b" ")
                self.wfile.flush()
                server.stopping.wait(0.05)
        elif self.path == "/secret":
            body = b"root:x:0:0:the secret first line\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture
def servers():
    """Two HTTP servers on loopback addresses of their own: 127.0.0.2 (an "outside"
    host for these tests, allowed by PAPERBOY_FETCH_ALLOW where a test says so) and
    127.0.0.1 (the inside, never allowed here)."""
    started = []
    for host in ("127.0.0.2", "127.0.0.1"):
        server = http.server.ThreadingHTTPServer((host, 0), _Handler)
        server.daemon_threads = True
        server.hits = Counter()
        server.stopping = threading.Event()
        server.redirect_to = ""
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
    outside, inside = (server for server, _ in started)
    yield outside, inside
    for server, thread in started:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


def url(server, path):
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{path}"


def refused(source) -> str:
    with pytest.raises(ImportFailed) as caught:
        import_source(source, "hf-json")
    return str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "http://127.0.0.1:9/feed.json",
        "http://localhost:9/feed.json",
        "http://[::1]:9/feed.json",
        "http://[::ffff:127.0.0.1]:9/feed.json",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/feed.json",
        "http://192.168.1.1/feed.json",
        "http://0.0.0.0:9/feed.json",
        "http://224.0.0.1/feed.json",
    ],
)
def test_inside_addresses_are_refused_before_any_connection(source, monkeypatch):
    def no_connection(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr("socket.socket.connect", no_connection)

    assert refused(source) == f"could not fetch {source}"
    assert not Paper.objects.exists()


def test_the_inside_is_not_reached_by_a_redirect(servers, settings):
    outside, inside = servers
    settings.PAPERBOY_FETCH_ALLOW = ["127.0.0.2"]
    outside.redirect_to = url(inside, "/secret")

    message = refused(url(outside, "/redirect"))

    assert outside.hits["/redirect"] == 1
    assert inside.hits["/secret"] == 0
    assert "secret" not in message and "root" not in message


@pytest.mark.parametrize("target", ["ftp://127.0.0.2/feed.json", "file:///etc/passwd"])
def test_a_redirect_to_another_scheme_is_refused(servers, settings, target):
    outside, _ = servers
    settings.PAPERBOY_FETCH_ALLOW = ["127.0.0.2"]
    outside.redirect_to = target

    assert refused(url(outside, "/redirect")) == f"could not fetch {url(outside, '/redirect')}"


def test_one_deadline_covers_a_response_that_trickles_for_ever(servers, settings):
    """Each byte comes well within a socket timeout: only a deadline for the whole
    fetch ends it."""
    outside, _ = servers
    settings.PAPERBOY_FETCH_ALLOW = ["127.0.0.2"]
    settings.PAPERBOY_FETCH_TIMEOUT = 1
    started = time.monotonic()

    refused(url(outside, "/trickle"))

    assert time.monotonic() - started < 10


def test_every_failure_reads_the_same(servers, settings):
    """Refused, not found, blocked or too slow: nothing to scan ports or hosts with."""
    outside, inside = servers
    settings.PAPERBOY_FETCH_ALLOW = ["127.0.0.2"]
    settings.PAPERBOY_FETCH_TIMEOUT = 1
    closed_port = "http://127.0.0.2:9/feed.json"
    sources = [
        closed_port,
        url(outside, "/missing"),
        url(inside, "/secret"),
        url(outside, "/trickle"),
    ]

    assert [refused(source) for source in sources] == [
        f"could not fetch {source}" for source in sources
    ]


def test_the_admin_import_page_shows_nothing_of_an_inside_url(admin_client, servers):
    _, inside = servers
    secret = url(inside, "/secret")

    response = admin_client.post(
        reverse("admin:papers_importrun_import"), {"url": secret, "format": "hf-json"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert f"could not fetch {secret}. Nothing was imported." in page
    assert "the secret first line" not in page
    assert inside.hits["/secret"] == 0
    assert not Paper.objects.exists()


def test_the_feed_task_refuses_an_inside_feed_and_records_it(servers, settings):
    from papers import tasks

    _, inside = servers
    settings.PAPERBOY_FEED_URLS = [url(inside, "/secret")]

    with mock.patch.object(tasks.import_feed, "apply_async"):  # no retries here
        results = tasks.import_feeds()

    assert inside.hits["/secret"] == 0
    assert "could not fetch" in results[url(inside, "/secret")]
    assert ImportRun.objects.get().status == ImportRun.Status.FAILED
