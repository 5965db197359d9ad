"""docker-compose.yml cannot run here (no Docker engine), so check that what it
starts exists: modules, apps, commands, variables and health checks."""

import importlib
import re
import shlex

import pytest
import yaml
from django.core.management import get_commands

from paperboy.env import Env
from tests.support.paths import ROOT

APP_SERVICES = ["migrate", "web", "worker", "beat"]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def command(service) -> list[str]:
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else value


def default_of(value: str) -> str:
    """What ${NAME:-default} interpolation gives when NAME is unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_it_defines_the_whole_stack(compose):
    assert set(compose["services"]) == {"postgres", "redis", *APP_SERVICES}


def test_every_long_running_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        if name != "migrate":
            assert service["healthcheck"]["test"], name


def test_the_web_service_runs_the_projects_wsgi_application(compose):
    args = command(compose["services"]["web"])
    assert args[0] == "gunicorn"
    module, attribute = args[1].split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_celery_services_point_at_the_projects_app(compose, name):
    args = command(compose["services"][name])
    assert args[:3] == ["celery", "-A", "paperboy"]
    assert args[3] == name
    assert importlib.import_module(args[2]).celery_app.main == "paperboy"


def test_beat_uses_the_database_scheduler_editable_in_the_admin():
    from paperboy.celery import app

    module, _, attribute = app.conf.beat_scheduler.partition(":")
    assert getattr(importlib.import_module(module), attribute).__name__ == "DatabaseScheduler"


def test_migrations_run_before_the_app_starts(compose):
    services = compose["services"]
    assert command(services["migrate"])[:3] == ["python", "manage.py", "migrate"]
    assert "migrate" in get_commands()
    for name in ["web", "worker", "beat"]:
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )


def test_app_services_share_settings_that_the_settings_module_reads(compose):
    settings_source = (ROOT / "paperboy" / "settings.py").read_text()
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        importlib.import_module(environment["DJANGO_SETTINGS_MODULE"])
        for variable in environment:
            if variable != "DJANGO_SETTINGS_MODULE":
                assert f'"{variable}"' in settings_source, f"{name}: settings never read {variable}"


def test_the_database_url_matches_the_postgres_service(compose):
    postgres = compose["services"]["postgres"]["environment"]
    url = default_of(compose["services"]["web"]["environment"]["DATABASE_URL"])
    config = Env({"DATABASE_URL": url}).database("DATABASE_URL", "")

    assert config["HOST"] == "postgres"
    assert config["NAME"] == postgres["POSTGRES_DB"]
    assert config["USER"] == postgres["POSTGRES_USER"]
    assert config["PASSWORD"] == default_of(postgres["POSTGRES_PASSWORD"])


def test_the_redis_url_points_at_the_redis_service(compose):
    url = compose["services"]["worker"]["environment"]["REDIS_URL"]
    assert Env({"REDIS_URL": url}).redis("REDIS_URL") == "redis://redis:6379/0"


def test_production_mode_is_on_and_the_secret_is_required(compose):
    environment = compose["services"]["web"]["environment"]
    assert environment["DEBUG"] == "false"
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_the_stack_imports_the_default_feeds_unless_told_otherwise(compose):
    environment = compose["services"]["beat"]["environment"]
    # Null: passed through only when set where compose runs, so the default feeds apply.
    assert environment["PAPERBOY_FEED_URLS"] is None
    assert default_of(environment["PAPERBOY_ARXIV_CATEGORIES"]) == ""
