import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured

from paperboy.env import Env
from tests.support.paths import ROOT


def env(**values):
    return Env(values)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("Yes", True), ("off", False), ("0", False)]
)
def test_booleans_are_parsed(raw, expected):
    assert env(DEBUG=raw).bool("DEBUG", default=not expected) is expected


def test_a_missing_boolean_takes_its_default():
    assert env().bool("DEBUG", default=True) is True


@pytest.mark.parametrize(
    ("reader", "values", "message"),
    [
        (
            lambda e: e.bool("DEBUG", True),
            {"DEBUG": "maybe"},
            "DEBUG: expected true or false, got 'maybe'",
        ),
        (
            lambda e: e.int("CONN_MAX_AGE", 60),
            {"CONN_MAX_AGE": "1m"},
            "CONN_MAX_AGE: expected a whole number",
        ),
        (
            lambda e: e.int("CONN_MAX_AGE", 60, min_value=0),
            {"CONN_MAX_AGE": "-1"},
            "CONN_MAX_AGE: must be at least 0",
        ),
        (
            lambda e: e.http_url("SITE_URL", "http://x"),
            {"SITE_URL": "paperboy.example"},
            "SITE_URL: expected an http(s) URL",
        ),
        (
            lambda e: e.http_urls("PAPERBOY_FEED_URLS"),
            {"PAPERBOY_FEED_URLS": "https://a.example/x, ftp://b"},
            "PAPERBOY_FEED_URLS: expected comma-separated",
        ),
        (
            lambda e: e.database("DATABASE_URL", ""),
            {"DATABASE_URL": "mysql://db/paperboy"},
            "DATABASE_URL: expected a postgres:// or sqlite:///",
        ),
        (
            lambda e: e.database("DATABASE_URL", ""),
            {"DATABASE_URL": "postgres://db:port/paperboy"},
            "DATABASE_URL:",
        ),
        (
            lambda e: e.database("DATABASE_URL", ""),
            {"DATABASE_URL": "postgres://db:5432/"},
            "DATABASE_URL: the URL names no database",
        ),
        (
            lambda e: e.redis("REDIS_URL"),
            {"REDIS_URL": "localhost:6379"},
            "REDIS_URL: expected redis://host:port/db",
        ),
        (
            lambda e: e.redis("REDIS_URL"),
            {"REDIS_URL": "redis://localhost:abc/0"},
            "REDIS_URL: the port is not a number",
        ),
        (
            lambda e: e.redis("REDIS_URL"),
            {"REDIS_URL": "redis://localhost:6379/zero"},
            "REDIS_URL: the database must be a number",
        ),
        (
            lambda e: e.mailers("EMAIL_URL", Path("/tmp")),
            {"EMAIL_URL": "smtp://"},
            "EMAIL_URL: an SMTP URL needs a host",
        ),
        (
            lambda e: e.mailers("EMAIL_URL", Path("/tmp")),
            {"EMAIL_URL": "smtp://mail:twentyfive"},
            "EMAIL_URL: the port is not a number",
        ),
        (
            lambda e: e.mailers("EMAIL_URL", Path("/tmp")),
            {"EMAIL_URL": "smtp://mail?timeout=soon"},
            "EMAIL_URL: timeout must be a number",
        ),
        (
            lambda e: e.mailers("EMAIL_URL", Path("/tmp")),
            {"EMAIL_URL": "file://"},
            "EMAIL_URL: a file URL needs a folder",
        ),
        (
            lambda e: e.mailers("EMAIL_URL", Path("/tmp")),
            {"EMAIL_URL": "anymail://carrier-pigeon"},
            "EMAIL_URL: anymail has no ESP called 'carrier-pigeon'",
        ),
        (
            lambda e: e.mailers("EMAIL_URL", Path("/tmp")),
            {"EMAIL_URL": "sendmail://localhost"},
            "EMAIL_URL: unknown scheme 'sendmail'",
        ),
    ],
)
def test_bad_values_are_rejected_naming_the_variable(reader, values, message):
    with pytest.raises(ImproperlyConfigured) as caught:
        reader(env(**values))
    assert str(caught.value).startswith(message)


def test_database_url_selects_postgresql():
    config = env(DATABASE_URL="postgres://paperboy:s%40cret@db.internal:5433/paperboy").database(
        "DATABASE_URL", ""
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 5433, "paperboy")
    assert (config["USER"], config["PASSWORD"]) == ("paperboy", "s@cret")


def test_database_url_defaults_to_the_embedded_sqlite_file():
    config = env().database("DATABASE_URL", "sqlite:////srv/var/paperboy.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "/srv/var/paperboy.sqlite3"


def test_redis_url_is_accepted():
    assert (
        env(REDIS_URL="redis://127.0.0.1:6379/2").redis("REDIS_URL") == "redis://127.0.0.1:6379/2"
    )
    assert env().redis("REDIS_URL") == ""


def test_feed_urls_are_a_comma_separated_list():
    urls = env(
        PAPERBOY_FEED_URLS=" https://a.example/feed.xml ,https://b.example/api/daily_papers,"
    )
    assert urls.http_urls("PAPERBOY_FEED_URLS") == [
        "https://a.example/feed.xml",
        "https://b.example/api/daily_papers",
    ]


@pytest.mark.parametrize(
    ("url", "backend", "options"),
    [
        (
            "smtp://127.0.0.1:2525",
            "django.core.mail.backends.smtp.EmailBackend",
            {"host": "127.0.0.1", "port": 2525, "use_tls": False, "use_ssl": False, "timeout": 30},
        ),
        (
            "smtp+tls://apikey:p%40ss%2Fword@smtp.example.com:587?timeout=5",
            "django.core.mail.backends.smtp.EmailBackend",
            {
                "host": "smtp.example.com",
                "port": 587,
                "use_tls": True,
                "use_ssl": False,
                "timeout": 5.0,
                "username": "apikey",
                "password": "p@ss/word",
            },
        ),
        (
            "smtp+ssl://u:p@smtp.example.com",
            "django.core.mail.backends.smtp.EmailBackend",
            {
                "host": "smtp.example.com",
                "port": 465,
                "use_tls": False,
                "use_ssl": True,
                "timeout": 30,
                "username": "u",
                "password": "p",
            },
        ),
        (
            "file:///var/mail/outbox",
            "mailing.eml.EmailBackend",
            {"file_path": "/var/mail/outbox"},
        ),
        ("console:", "django.core.mail.backends.console.EmailBackend", None),
        ("anymail://postmark", "anymail.backends.postmark.EmailBackend", None),
        ("anymail://amazon_ses", "anymail.backends.amazon_ses.EmailBackend", None),
    ],
)
def test_email_url_becomes_the_default_mailer(url, backend, options):
    mailer = env(EMAIL_URL=url).mailers("EMAIL_URL", Path("/unused"))["default"]
    assert mailer["BACKEND"] == backend
    assert mailer.get("OPTIONS") == options


def test_without_email_url_mail_goes_to_the_outbox():
    mailer = env().mailers("EMAIL_URL", Path("/srv/var/outbox"))["default"]
    assert mailer == {
        "BACKEND": "mailing.eml.EmailBackend",
        "OPTIONS": {"file_path": "/srv/var/outbox"},
    }


def test_anymail_credentials_come_from_anymail_variables():
    settings = env(
        ANYMAIL_POSTMARK_SERVER_TOKEN="tok", ANYMAIL_WEBHOOK_SECRET="u:p", OTHER="x"
    ).anymail()
    assert settings == {"POSTMARK_SERVER_TOKEN": "tok", "WEBHOOK_SECRET": "u:p"}


def test_the_project_uses_mailers_not_the_deprecated_email_backend():
    from django.conf import settings

    assert "default" in settings.MAILERS
    assert mail.mailers.default.alias == "default"
    source = (ROOT / "paperboy" / "settings.py").read_text()
    assert "EMAIL_BACKEND" not in source


def test_the_outbox_writes_one_eml_file_per_message(tmp_path, settings):
    settings.MAILERS = {
        "outbox": {"BACKEND": "mailing.eml.EmailBackend", "OPTIONS": {"file_path": str(tmp_path)}}
    }
    messages = [
        mail.EmailMultiAlternatives(
            "Hello Ünïcode", "Plain body", "from@example.org", [f"to{i}@example.org"]
        )
        for i in range(3)
    ]
    messages[0].attach_alternative("<p>HTML body</p>", "text/html")

    with mail.mailers["outbox"] as connection:
        assert connection.send_messages(messages) == 3

    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 3
    assert not list(tmp_path.glob(".*"))
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert sorted(m["To"] for m in parsed) == [
        "to0@example.org",
        "to1@example.org",
        "to2@example.org",
    ]
    assert {m["Subject"] for m in parsed} == {"Hello Ünïcode"}
    html = next(m for m in parsed if m["To"] == "to0@example.org").get_body(("html",))
    assert html.get_content().strip() == "<p>HTML body</p>"


def run_settings(
    show="s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL", **overrides
):
    """Import the settings module in a fresh interpreter with only these variables, and
    print ``show``."""
    environ = {
        "PATH": os.environ["PATH"],
        "PAPERBOY_VAR_DIR": os.environ.get("PAPERBOY_VAR_DIR", str(ROOT / "var")),
    }
    environ.update(overrides)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import paperboy.settings as s; print({show})",
        ],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_without_a_secret_key_refuses_to_start():
    result = run_settings(DEBUG="false", ALLOWED_HOSTS="paperboy.example")
    assert result.returncode != 0
    assert "SECRET_KEY: must be set when DEBUG is off" in result.stderr


def test_production_settings_load_from_variables():
    result = run_settings(
        DEBUG="false",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="paperboy.example",
        DATABASE_URL="postgres://u@db/paperboy",
        REDIS_URL="redis://cache:6379/0",
        SITE_URL="https://paperboy.example",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "django.db.backends.postgresql",
        "redis://cache:6379/0",
    ]


def test_the_embedded_default_needs_no_server():
    result = run_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "django.db.backends.sqlite3",
        "filesystem://localhost/",
    ]


def test_a_malformed_variable_stops_start_up_naming_it():
    result = run_settings(EMAIL_URL="smtp://mail:twentyfive")
    assert result.returncode != 0
    assert "EMAIL_URL: the port is not a number" in result.stderr


def test_earlier_secret_keys_come_from_the_environment():
    result = run_settings(show="s.SECRET_KEY_FALLBACKS", SECRET_KEY_FALLBACKS="old-key, older-key")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['old-key', 'older-key']"
