"""Typed readers for environment variables.

Every reader raises ImproperlyConfigured naming the variable, so a typo in a
deployment fails at start-up instead of surfacing as odd behaviour later.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core.text import ARXIV_CATEGORY

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Env:
    """Reads variables from a mapping (``os.environ`` unless told otherwise)."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ

    def _error(self, name: str, problem: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{name}: {problem}")

    def is_set(self, name: str) -> bool:
        return bool(self.environ.get(name, "").strip())

    def str(self, name: str, default: str = "") -> str:
        return self.environ.get(name, default).strip()

    def bool(self, name: str, default: bool) -> bool:
        if name not in self.environ:
            return default
        value = self.environ[name].strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise self._error(name, f"expected true or false, got {self.environ[name]!r}")

    def int(self, name: str, default: int, *, min_value: int | None = None) -> int:
        raw = self.str(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self._error(name, f"expected a whole number, got {raw!r}") from None
        if min_value is not None and value < min_value:
            raise self._error(name, f"must be at least {min_value}, got {value}")
        return value

    def float(self, name: str, default: float) -> float:
        raw = self.str(name)
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise self._error(name, f"expected a number, got {raw!r}") from None

    def list(self, name: str, default: list[str] | None = None) -> list[str]:
        raw = self.str(name)
        if not raw:
            return list(default or [])
        return [item.strip() for item in raw.split(",") if item.strip()]

    def http_url(self, name: str, default: str) -> str:
        raw = self.str(name, default)
        parts = urlsplit(raw)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise self._error(
                name, f"expected an http(s) URL such as https://example.com, got {raw!r}"
            )
        return raw.rstrip("/")

    def http_urls(self, name: str, default: list[str] | None = None) -> list[str]:
        """Comma-separated http(s) URLs; ``default`` when the variable is unset, none
        when it is set empty (so a default list can be turned off)."""
        urls = self.list(name) if name in self.environ else list(default or [])
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise self._error(name, f"expected comma-separated http(s) URLs, got {url!r}")
        return urls

    def arxiv_categories(self, name: str) -> list[str]:
        categories = self.list(name)
        for category in categories:
            if not ARXIV_CATEGORY.fullmatch(category):
                raise self._error(
                    name, f"expected arXiv categories such as cs.LG,cs.CL, got {category!r}"
                )
        return categories

    def database(self, name: str, default: str) -> dict:
        raw = self.str(name) or default
        scheme = urlsplit(raw).scheme
        if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
            raise self._error(
                name, f"expected a postgres:// or sqlite:/// URL, got scheme {scheme!r}"
            )
        try:
            config = dj_database_url.parse(raw, conn_max_age=0)
        except ValueError as exc:
            raise self._error(name, str(exc)) from None
        if not config.get("NAME"):
            raise self._error(name, "the URL names no database")
        return dict(config)

    def redis(self, name: str) -> str:
        raw = self.str(name)
        if not raw:
            return ""
        parts = urlsplit(raw)
        if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
            raise self._error(name, f"expected redis://host:port/db, got {raw!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError for a non-numeric port
        except ValueError:
            raise self._error(name, f"the port is not a number in {raw!r}") from None
        if parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise self._error(name, f"the database must be a number, got {parts.path!r}")
        return raw

    def mailers(self, name: str, default_outbox: Path) -> dict:
        """Turn EMAIL_URL into Django's MAILERS setting."""
        raw = self.str(name)
        if not raw:
            return {"default": outbox_mailer(default_outbox)}
        try:
            return {"default": parse_email_url(raw)}
        except ValueError as exc:
            raise self._error(name, str(exc)) from None

    def anymail(self) -> dict:
        """Collect ANYMAIL_<SETTING> variables into anymail's settings dict."""
        prefix = "ANYMAIL_"
        return {
            key.removeprefix(prefix): value
            for key, value in self.environ.items()
            if key.startswith(prefix) and value
        }


def outbox_mailer(path: Path | str) -> dict:
    return {"BACKEND": "mailing.eml.EmailBackend", "OPTIONS": {"file_path": str(path)}}


_ESP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_email_url(raw: str) -> dict:
    """Parse EMAIL_URL into one MAILERS entry.

    smtp://host:port, smtp+tls://user:pass@host:587 (STARTTLS),
    smtp+ssl://user:pass@host:465, file:///path/to/outbox, console:,
    anymail://ESP (credentials come from ANYMAIL_* variables).
    """
    parts = urlsplit(raw)
    scheme = parts.scheme
    if scheme in {"smtp", "smtp+tls", "smtp+ssl"}:
        if not parts.hostname:
            raise ValueError(f"an SMTP URL needs a host, got {raw!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"the port is not a number in {raw!r}") from None
        default_port = {"smtp": 25, "smtp+tls": 587, "smtp+ssl": 465}[scheme]
        options: dict = {
            "host": parts.hostname,
            "port": port or default_port,
            "use_tls": scheme == "smtp+tls",
            "use_ssl": scheme == "smtp+ssl",
            "timeout": 30,
        }
        if parts.username:
            options["username"] = unquote(parts.username)
            options["password"] = unquote(parts.password or "")
        query = parse_qs(parts.query)
        if "timeout" in query:
            try:
                options["timeout"] = float(query["timeout"][0])
            except ValueError:
                raise ValueError(f"timeout must be a number of seconds in {raw!r}") from None
        return {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}
    if scheme == "file":
        path = unquote(parts.path)
        if not path or path == "/":
            raise ValueError(
                f"a file URL needs a folder, such as file:///var/mail/outbox, got {raw!r}"
            )
        return outbox_mailer(path)
    if scheme == "console":
        return {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme == "anymail":
        esp = (parts.hostname or parts.path).strip("/").lower()
        if not _ESP_NAME.match(esp) or importlib.util.find_spec(f"anymail.backends.{esp}") is None:
            raise ValueError(f"anymail has no ESP called {esp!r} (e.g. anymail://postmark)")
        return {"BACKEND": f"anymail.backends.{esp}.EmailBackend"}
    raise ValueError(
        f"unknown scheme {scheme!r}; use smtp://, smtp+tls://, smtp+ssl://, file://, "
        "console: or anymail://ESP"
    )
