"""A real HTTP server on loopback that answers as Postmark's send API does, or not at all.

Fixture ``esp_server``: see :class:`ESPServer`. anymail's Postmark backend is pointed
at it through ``POSTMARK_API_URL``, so a test sees exactly the requests anymail makes
and the answers it gets, over a real socket.
"""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parseaddr

import pytest

HOST = "127.0.0.1"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServer

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        esp = self.server.esp
        with esp.condition:
            for to in body.get("To", "").split(","):
                esp.requests[parseaddr(to)[1].casefold()] += 1
            esp.in_flight += 1
            esp.peak_in_flight = max(esp.peak_in_flight, esp.in_flight)
            esp.condition.notify_all()
            mode, delay = esp.mode, esp.delay
        try:
            if delay:
                esp.stopping.wait(delay)  # the ESP's own latency; other requests go on
            self.answer(esp, body, mode)
        finally:
            with esp.condition:
                esp.in_flight -= 1

    def answer(self, esp: ESPServer, body: dict, mode: str) -> None:
        if mode == "stall":
            # The request is in; the answer never comes (until the server stops).
            esp.stopping.wait()
            return
        status = 200 if mode in ("accept", "unreadable") else int(mode)
        answer = {"To": body.get("To"), "ErrorCode": 0, "Message": "OK"}
        if status == 200:
            answer["MessageID"] = str(uuid.uuid4())
        else:
            answer = {"ErrorCode": 100, "Message": "Internal error"}
        payload = json.dumps(answer).encode() if mode != "unreadable" else b"<html>OK</html>"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    esp: ESPServer


class ESPServer:
    """Postmark's ``/email`` endpoint on loopback.

    ``mode``: "accept" (200 and a MessageID), "stall" (reads the request, never answers),
    "unreadable" (200 and a body that is not Postmark's JSON) or an HTTP status such as
    "500". ``delay``: seconds before each answer. ``requests`` counts requests per
    recipient; ``peak_in_flight`` is the most requests it was answering at once."""

    def __init__(self, server: _HTTPServer):
        self._server = server
        self.url = f"http://{HOST}:{server.server_port}/"
        self.mode = "accept"
        self.delay = 0.0  # seconds before each answer
        self.in_flight = self.peak_in_flight = 0  # requests being answered, and the most
        self.requests: Counter[str] = Counter()
        self.condition = threading.Condition()
        self.stopping = threading.Event()

    def requests_per_address(self) -> Counter[str]:
        with self.condition:
            return Counter(self.requests)

    def settings(self, timeout: float = 5) -> tuple[dict, dict]:
        """(MAILERS, ANYMAIL) that send through this server, with anymail's request
        timeout (seconds)."""
        mailers = {"default": {"BACKEND": "anymail.backends.postmark.EmailBackend"}}
        anymail = {
            "POSTMARK_SERVER_TOKEN": "test-token",
            "POSTMARK_API_URL": self.url,
            "REQUESTS_TIMEOUT": timeout,
        }
        return mailers, anymail


@contextmanager
def running_esp_server() -> Iterator[ESPServer]:
    server = _HTTPServer((HOST, 0), _Handler)
    esp = server.esp = ESPServer(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield esp
    finally:
        esp.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def esp_server(settings):
    """An ESP on loopback, made Django's default mailer for the test."""
    with running_esp_server() as esp:
        settings.MAILERS, settings.ANYMAIL = esp.settings()
        yield esp
