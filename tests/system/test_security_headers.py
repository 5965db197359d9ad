"""Production settings pass `check --deploy`, and every page the project serves carries
the security headers: a Content Security Policy its own markup lives within,
X-Frame-Options, Referrer-Policy, X-Content-Type-Options, and HSTS over https only."""

import os
import re
import runpy
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from django_celery_beat.models import PeriodicTask

from digest import links as digest_links
from digest.models import Digest, DigestItem
from subscriptions import links
from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory
from tests.support.paths import ROOT

HOST = "papers.example"
HSTS = "Strict-Transport-Security"
SCRIPT_TYPES = {"", "text/javascript", "module", "application/javascript"}


def production_environ(**overrides) -> dict[str, str]:
    """The variables of a production deployment, and nothing else from this process but
    PATH, the var folder and the database and Redis this run uses."""
    environ = {
        "PATH": os.environ["PATH"],
        "PAPERBOY_VAR_DIR": os.environ.get("PAPERBOY_VAR_DIR", str(ROOT / "var")),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SITE_URL": f"https://{HOST}",
        "ALLOWED_HOSTS": HOST,
        # check --deploy never connects: any well-formed URLs do where CI set none.
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://paperboy@db.invalid/paperboy"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://cache.invalid:6379/0"),
    }
    environ.update(overrides)
    return environ


def check_deploy(**overrides) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_environ(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


# check --deploy -----------------------------------------------------------------------


def test_check_deploy_finds_nothing_to_warn_about_in_production():
    result = check_deploy()

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("overrides", "warnings"),
    [
        # A plain-http site cannot redirect to https or pin it: Django says so.
        ({"SITE_URL": f"http://{HOST}"}, {"W004", "W008", "W012", "W016"}),
        ({"SECURE_HSTS_PRELOAD": "false"}, {"W021"}),
        (
            {"SECURE_HSTS_INCLUDE_SUBDOMAINS": "false", "SECURE_SSL_REDIRECT": "no"},
            {"W005", "W008"},
        ),
        ({"SECURE_HSTS_SECONDS": "0"}, {"W004"}),
    ],
)
def test_an_operator_can_turn_the_https_settings_off_and_check_deploy_says_so(overrides, warnings):
    result = check_deploy(**overrides)

    assert result.returncode == 1
    assert set(re.findall(r"\(security\.(W\d+)\)", result.stderr)) == warnings


def test_a_malformed_security_variable_stops_start_up_naming_it():
    result = check_deploy(SECURE_HSTS_SECONDS="a year")

    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS: expected a whole number" in result.stderr


# Production-like settings in this process ---------------------------------------------


def load_settings(environ: dict[str, str]) -> dict:
    """paperboy/settings.py as it comes out for these variables alone."""
    with mock.patch.dict(os.environ, environ, clear=True):
        return runpy.run_path(str(ROOT / "paperboy" / "settings.py"))


def use_security_settings(settings, loaded: dict) -> None:
    """Make the security half of ``loaded`` this test's settings. Not the rest: the
    database and the static files storage stay those of the test run."""
    names = [
        "MIDDLEWARE",
        "TEMPLATES",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "X_FRAME_OPTIONS",
        *(name for name in loaded if name.startswith("SECURE_")),
    ]
    for name in names:
        setattr(settings, name, loaded[name])


@pytest.fixture
def production(settings, tmp_path):
    loaded = load_settings(production_environ(PAPERBOY_VAR_DIR=str(tmp_path)))
    assert loaded["DEBUG"] is False
    use_security_settings(settings, loaded)
    return loaded


@pytest.fixture
def production_over_http(settings, tmp_path):
    """Production with the https redirect turned off, so pages answer over plain http."""
    loaded = load_settings(
        production_environ(PAPERBOY_VAR_DIR=str(tmp_path), SECURE_SSL_REDIRECT="false")
    )
    use_security_settings(settings, loaded)
    return loaded


def test_production_settings_pin_https_only_when_the_site_is_https(tmp_path):
    https = load_settings(production_environ(PAPERBOY_VAR_DIR=str(tmp_path)))
    http = load_settings(production_environ(PAPERBOY_VAR_DIR=str(tmp_path), SITE_URL="http://x"))

    assert https["SECURE_SSL_REDIRECT"] is True
    assert https["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert https["SESSION_COOKIE_SECURE"] is https["CSRF_COOKIE_SECURE"] is True
    assert https["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    # docker-compose's default SITE_URL is plain http: nothing there may demand https.
    assert http["SECURE_SSL_REDIRECT"] is False
    assert http["SECURE_HSTS_SECONDS"] == 0
    assert http["SESSION_COOKIE_SECURE"] is http["CSRF_COOKIE_SECURE"] is False


# Every page ------------------------------------------------------------------------


class _Markup(HTMLParser):
    """What in a page the Content Security Policy decides about."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.inline_scripts: list[str | None] = []  # their nonces
        self.inline_styles: list[str | None] = []
        self.sources: list[str] = []  # script src and stylesheet href
        self.style_attributes = 0
        self.handlers: list[str] = []  # onclick= and the like
        self.javascript_urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and (attrs.get("type") or "").lower() in SCRIPT_TYPES:
            if attrs.get("src"):
                self.sources.append(attrs["src"])
            else:
                self.inline_scripts.append(attrs.get("nonce"))
        if tag == "style":
            self.inline_styles.append(attrs.get("nonce"))
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "").split():
            self.sources.append(attrs.get("href") or "")
        if "style" in attrs:
            self.style_attributes += 1
        self.handlers += [name for name in attrs if name.startswith("on")]
        self.javascript_urls += [
            value
            for name, value in attrs.items()
            if name in {"href", "src", "action", "formaction"}
            and (value or "").strip().lower().startswith("javascript:")
        ]


def policy(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_security_headers(response, *, https: bool) -> None:
    assert response.has_header("Content-Security-Policy"), "no Content-Security-Policy"
    csp = policy(response)
    scripts = csp.get("script-src", csp["default-src"])
    for loose in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
        assert loose not in scripts, f"script-src allows {loose}"
    assert csp["default-src"] in (["'self'"], ["'none'"])
    assert csp.get("object-src", csp["default-src"]) in (["'none'"], ["'self'"])
    assert response.get("X-Frame-Options") == "DENY" or csp.get("frame-ancestors") == ["'none'"]
    assert response["Referrer-Policy"] in {"same-origin", "no-referrer"}
    assert response["X-Content-Type-Options"] == "nosniff"
    if https:
        assert response[HSTS] == "max-age=31536000; includeSubDomains; preload"
    else:
        assert not response.has_header(HSTS)

    if not response.get("Content-Type", "").startswith("text/html"):
        return
    # Whatever the page holds must run under its own policy, or the browser blocks it.
    markup = _Markup()
    markup.feed(response.content.decode())
    nonce = next(
        (v.removeprefix("'nonce-").removesuffix("'") for v in scripts if v.startswith("'nonce-")),
        None,
    )
    styles = csp.get("style-src", csp["default-src"])
    style_nonce = next(
        (v.removeprefix("'nonce-").removesuffix("'") for v in styles if v.startswith("'nonce-")),
        None,
    )
    assert all(n is not None and n == nonce for n in markup.inline_scripts), (
        "an inline script without the nonce"
    )
    if "'unsafe-inline'" not in styles:
        assert all(n is not None and n == style_nonce for n in markup.inline_styles), (
            "an inline <style> without the nonce"
        )
        assert markup.style_attributes == 0, "style= attributes, which the policy blocks"
    assert all(not urlsplit(src).netloc for src in markup.sources), markup.sources
    assert markup.handlers == [], markup.handlers
    assert markup.javascript_urls == [], markup.javascript_urls


@pytest.fixture
def site(db):
    """A subscriber of each kind the links need, and a digest that was sent."""
    topic = TopicFactory(name="Replay methods")
    active = SubscriberFactory(email="ada@example.org")
    active.topics.add(topic)
    pending = SubscriberFactory(email="grace@example.org", status="pending", confirmed_at=None)
    paused = SubscriberFactory(email="edsger@example.org", status="paused")
    paper = PaperFactory(title="Replay buffers at scale")
    digest = Digest.objects.create(
        subscriber=active, period="2026-11-28", scheduled_for=paper.ingested_at
    )
    DigestItem.objects.create(
        digest=digest, subscriber=active, paper=paper, position=1, reason="Replay methods"
    )
    return {
        "active": active,
        "pending": pending,
        "paused": paused,
        "paper": paper,
        "digest": digest,
    }


def path_of(url: str) -> str:
    return urlsplit(url).path


def pages(site) -> dict[str, tuple[str, str, int]]:
    """Every named route outside the admin: (method, path, the status it answers)."""
    active, pending, paused = site["active"], site["pending"], site["paused"]
    from subscriptions.tokens import Purpose, make_token

    def sub(name, subscriber, purpose):
        return reverse(f"subscriptions:{name}", args=[make_token(subscriber, purpose)])

    return {
        "trending": ("get", reverse("trending"), 200),
        "healthz": ("get", reverse("healthz"), 200),
        "digest:feedback": (
            "get",
            path_of(digest_links.feedback_url(active, site["paper"], 1)),
            200,
        ),
        "digest:view": ("get", path_of(digest_links.view_url(site["digest"])), 200),
        "subscriptions:signup": ("get", reverse("subscriptions:signup"), 200),
        "subscriptions:check_inbox": ("get", reverse("subscriptions:check_inbox"), 200),
        "subscriptions:confirm": ("get", path_of(links.confirm_url(pending)), 200),
        "subscriptions:confirmed": ("get", sub("confirmed", pending, Purpose.CONFIRM), 200),
        "subscriptions:manage": ("get", path_of(links.manage_url(active)), 200),
        "subscriptions:pause": ("post", sub("pause", active, Purpose.MANAGE), 302),
        "subscriptions:resume": ("post", sub("resume", paused, Purpose.MANAGE), 302),
        "subscriptions:export": ("get", sub("export", active, Purpose.MANAGE), 200),
        "subscriptions:delete": ("get", sub("delete", active, Purpose.MANAGE), 200),
        "subscriptions:unsubscribe": ("get", path_of(links.unsubscribe_url(active)), 200),
    }


def project_routes() -> list[tuple[str, str]]:
    """(name, pattern) of every route the project serves outside the admin."""

    def walk(patterns, namespaces, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if str(pattern.pattern) == "admin/":
                    continue
                spaces = [*namespaces, pattern.namespace] if pattern.namespace else namespaces
                yield from walk(pattern.url_patterns, spaces, prefix + str(pattern.pattern))
            else:
                yield ":".join([*namespaces, pattern.name]), prefix + str(pattern.pattern)

    return list(walk(get_resolver().url_patterns, [], ""))


def every_page(site) -> list[tuple[str, str, str, int | None]]:
    """(what, method, path, expected status) for every route, the 404 page included.

    The ESP webhooks are reached with a GET and no credentials, and only their headers
    are checked: what they answer is anymail's business (amazon_ses's views even answer
    500 without boto3 installed), and an error page must carry the headers too."""
    known = pages(site)
    walked = []
    for name, pattern in project_routes():
        if name in known:
            walked.append((name, *known[name]))
        elif pattern.startswith("anymail/"):
            walked.append((name, "get", reverse(name), None))
        else:
            pytest.fail(f"the route {name} ({pattern}) is missing from this walk: add it")
    walked.append(("404 page", "get", "/no-such-page/", 404))
    walked.append(("bad token", "get", "/manage/forged-token/", 404))
    return walked


def fetch(client, method, path, *, https: bool):
    proto = "https" if https else "http"
    return getattr(client, method)(
        path, secure=https, headers={"host": HOST, "x-forwarded-proto": proto}
    )


def check_every_page(client, site, *, https: bool) -> int:
    seen = 0
    for what, method, path, status in every_page(site):
        response = fetch(client, method, path, https=https)
        if status is not None:
            assert response.status_code == status, (what, response.status_code)
        try:
            assert_security_headers(response, https=https)
        except AssertionError as error:
            raise AssertionError(f"{what} ({path}): {error}") from error
        seen += 1
    return seen


def test_every_public_page_carries_the_headers_over_https(production, site):
    seen = check_every_page(Client(raise_request_exception=False), site, https=True)

    assert seen == len(project_routes()) + 2


def test_over_plain_http_the_same_headers_come_without_hsts(production_over_http, site):
    check_every_page(Client(raise_request_exception=False), site, https=False)


def test_in_development_every_page_has_the_same_policy(site, settings):
    # The test run's own settings: DEBUG's, plain http, no HSTS.
    settings.ALLOWED_HOSTS = [HOST]
    check_every_page(Client(raise_request_exception=False), site, https=False)


def test_plain_http_is_redirected_to_https_without_hsts_except_the_health_check(
    production, settings, site
):
    settings.ALLOWED_HOSTS = [HOST, "127.0.0.1"]
    client = Client()

    redirected = fetch(client, "get", path_of(links.manage_url(site["active"])), https=False)
    health = client.get("/healthz", headers={"host": "127.0.0.1"})

    assert redirected.status_code == 301
    assert redirected["Location"] == f"https://{HOST}{path_of(links.manage_url(site['active']))}"
    assert not redirected.has_header(HSTS)
    assert health.status_code == 200
    assert not health.has_header(HSTS)


def test_the_csrf_failure_and_server_error_pages_carry_the_headers(production, site, monkeypatch):
    strict = Client(enforce_csrf_checks=True)
    refused = strict.post(
        reverse("subscriptions:signup"),
        {"email": "x@example.org"},
        secure=True,
        headers={"host": HOST, "x-forwarded-proto": "https", "referer": f"https://{HOST}/"},
    )
    assert refused.status_code == 403
    assert_security_headers(refused, https=True)

    from paperboy import views

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "Paginator", broken)
    client = Client(raise_request_exception=False)
    failed = fetch(client, "get", reverse("trending"), https=True)
    assert failed.status_code == 500
    assert_security_headers(failed, https=True)


def admin_pages(site) -> list[tuple[str, str]]:
    """The admin's front page, every model's list, and the pages with scripts or
    forms of their own."""
    task = PeriodicTask.objects.first()
    assert task is not None, "the migrations create the periodic tasks"
    pages = [("index", reverse("admin:index"))]
    for model in admin.site._registry:
        opts = model._meta
        pages.append(
            (f"{opts.label} list", reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        )
    return [
        *pages,
        ("paper change", reverse("admin:papers_paper_change", args=[site["paper"].pk])),
        ("paper add", reverse("admin:papers_paper_add")),
        (
            "periodic task change",
            reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]),
        ),
        ("import papers", reverse("admin:papers_importrun_import")),
        (
            "subscriber change",
            reverse("admin:subscriptions_subscriber_change", args=[site["active"].pk]),
        ),
        (
            "digest preview",
            reverse("admin:subscriptions_subscriber_preview", args=[site["active"].pk]),
        ),
    ]


def test_the_admin_login_and_every_list_carry_the_headers(production, site, django_user_model):
    client = Client()
    login = fetch(client, "get", reverse("admin:login"), https=True)
    assert login.status_code == 200
    assert_security_headers(login, https=True)

    client.force_login(django_user_model.objects.create_superuser("curator", "c@example.org", "x"))
    for what, path in admin_pages(site):
        response = fetch(client, "get", path, https=True)
        assert response.status_code == 200, (what, response.status_code)
        try:
            assert_security_headers(response, https=True)
        except AssertionError as error:
            raise AssertionError(f"admin {what} ({path}): {error}") from error


def test_admin_inline_scripts_carry_the_nonce_the_header_names(production, site, admin_client):
    task = PeriodicTask.objects.first()
    response = fetch(
        admin_client,
        "get",
        reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]),
        https=True,
    )

    nonce = re.search(r"'nonce-([^']+)'", policy(response)["script-src"][1]).group(1)
    html = response.content.decode()
    assert f'<script id="periodic-task-overrides" nonce="{nonce}">' in html
    # A fresh nonce each time: one seen once is no good for an injected script later.
    again = fetch(
        admin_client,
        "get",
        reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]),
        https=True,
    )
    assert nonce not in again["Content-Security-Policy"]


def test_a_page_that_shows_an_email_runs_no_script_and_loads_nothing(site, client):
    response = client.get(path_of(digest_links.view_url(site["digest"])))

    csp = policy(response)
    assert csp["default-src"] == ["'none'"]
    assert "script-src" not in csp
    assert csp["style-src"] == ["'unsafe-inline'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert b"Replay buffers at scale" in response.content
