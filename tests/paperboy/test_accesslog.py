"""The access log never holds a token that acts for a reader."""

import datetime as dt
import runpy
from types import SimpleNamespace

from gunicorn.config import Config

from paperboy.accesslog import AccessLogger
from subscriptions.tokens import Purpose, make_token
from tests.support.factories import SubscriberFactory
from tests.support.paths import ROOT


def test_tokens_in_paths_and_referers_are_left_out(db):
    token = make_token(SubscriberFactory(), Purpose.UNSUBSCRIBE)
    path = f"/unsubscribe/{token}/"
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://papers.example/manage/{token}/",
        "REMOTE_ADDR": "192.0.2.1",
    }
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    request = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])

    atoms = AccessLogger(Config()).atoms(response, request, environ, dt.timedelta(seconds=1))

    assert atoms["r"] == "POST /unsubscribe/[token]/ HTTP/1.1"
    assert atoms["U"] == "/unsubscribe/[token]/"
    assert atoms["f"] == atoms["{referer}i"] == "https://papers.example/manage/[token]/"
    assert token not in str(atoms)


def test_gunicorn_uses_it_from_the_directory_it_starts_in():
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    assert settings["logger_class"] == "paperboy.accesslog.AccessLogger"
