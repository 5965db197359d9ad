"""Feeds imported on a schedule: Hugging Face's daily papers by default, arXiv by
category on request; a feed that cannot be fetched is recorded and tried again later."""

import io
import json
import os
import runpy
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from paperboy.env import Env
from papers import feeds, tasks
from papers.models import ImportRun, Paper
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db

HF = "https://huggingface.co/api/daily_papers"


def hf_api(folder, samples, name="hf-daily-papers-2026-08-21.json", **changes):
    """The sample served where Hugging Face serves it (/api/daily_papers), with
    ``changes`` applied to every paper."""
    items = json.loads((samples / name).read_text())
    for item in items:
        item["paper"].update(changes)
    (folder / "api").mkdir(exist_ok=True)
    (folder / "api" / "daily_papers").write_text(json.dumps(items))
    return items


def settings_for(**environ) -> dict:
    """paperboy/settings.py as it comes out for these variables alone (a new install)."""
    variables = {
        "PATH": os.environ["PATH"],
        "PAPERBOY_VAR_DIR": os.environ.get("PAPERBOY_VAR_DIR", str(ROOT / "var")),
    } | environ
    with mock.patch.dict(os.environ, variables, clear=True):
        return runpy.run_path(str(ROOT / "paperboy" / "settings.py"))


def test_a_new_install_imports_hugging_faces_daily_and_trending_papers():
    loaded = settings_for()

    assert loaded["PAPERBOY_FEED_URLS"] == [f"{HF}?limit=100", f"{HF}?sort=trending&limit=100"]
    assert [feeds.describe(url) for url in loaded["PAPERBOY_FEED_URLS"]] == [
        "Hugging Face daily papers",
        "Hugging Face trending papers",
    ]
    assert loaded["PAPERBOY_ARXIV_CATEGORIES"] == []


def test_set_empty_the_variable_turns_the_default_feeds_off():
    assert settings_for(PAPERBOY_FEED_URLS="")["PAPERBOY_FEED_URLS"] == []
    assert settings_for(PAPERBOY_FEED_URLS="https://a.example/x.json")["PAPERBOY_FEED_URLS"] == [
        "https://a.example/x.json"
    ]


def test_arxiv_categories_add_one_listing_of_their_newest_papers(settings):
    settings.PAPERBOY_FEED_URLS = []
    settings.PAPERBOY_ARXIV_CATEGORIES = ["cs.LG", "cs.CL"]

    [url] = feeds.urls()

    assert url.startswith(
        "https://export.arxiv.org/api/query?search_query=cat%3Acs.LG+OR+cat%3Acs.CL"
    )
    assert "sortBy=submittedDate" in url and "sortOrder=descending" in url
    assert feeds.describe(url) == "arXiv: cs.LG, cs.CL"


@pytest.mark.parametrize("raw", ["cs.LG,cs LG", "cs.LG;cs.CL", "https://arxiv.org"])
def test_a_mistyped_arxiv_category_stops_the_start(raw):
    with pytest.raises(ImproperlyConfigured, match="PAPERBOY_ARXIV_CATEGORIES: expected arXiv"):
        Env({"PAPERBOY_ARXIV_CATEGORIES": raw}).arxiv_categories("PAPERBOY_ARXIV_CATEGORIES")


def test_the_schedule_imports_the_hugging_face_api_with_what_it_says(
    feed_server, samples, settings
):
    folder, base = feed_server
    items = hf_api(folder, samples)
    settings.PAPERBOY_FEED_URLS = [f"{base}/api/daily_papers?limit=100"]

    results = tasks.import_feeds()

    assert results == {
        f"{base}/api/daily_papers?limit=100": "58 created, 0 updated, 0 unchanged, 0 rejected"
    }
    assert Paper.objects.count() == 58
    source = next(
        item
        for item in items
        if all(item["paper"].get(k) for k in ("projectPage", "githubRepo", "ai_summary"))
    )
    paper = Paper.objects.get(arxiv_id=source["paper"]["id"])
    assert paper.ai_summary == source["paper"]["ai_summary"]
    assert paper.ai_keywords == source["paper"]["ai_keywords"]
    assert paper.code_url == source["paper"]["githubRepo"]
    assert paper.code_stars == source["paper"]["githubStars"]
    assert paper.project_url == source["paper"]["projectPage"]
    assert paper.comments == source["numComments"]
    assert paper.hf_url == f"https://huggingface.co/papers/{paper.arxiv_id}"
    assert Paper.objects.filter(code_url="").count() == sum(
        1 for item in items if not item["paper"].get("githubRepo")
    )


def test_a_later_import_updates_what_the_source_says(feed_server, samples, settings):
    folder, base = feed_server
    hf_api(folder, samples)
    settings.PAPERBOY_FEED_URLS = [f"{base}/api/daily_papers"]
    tasks.import_feeds()
    items = hf_api(
        folder,
        samples,
        githubStars=1234,
        ai_summary="A better summary.",
        ai_keywords=["new keyword"],
        githubRepo="https://github.com/example/moved",
    )
    for item in items:
        item["numComments"] = 7
    (folder / "api" / "daily_papers").write_text(json.dumps(items))

    results = tasks.import_feeds()

    assert results[f"{base}/api/daily_papers"] == "0 created, 58 updated, 0 unchanged, 0 rejected"
    assert set(Paper.objects.values_list("code_stars", "ai_summary", "code_url", "comments")) == {
        (1234, "A better summary.", "https://github.com/example/moved", 7)
    }
    assert all(p.ai_keywords == ["new keyword"] for p in Paper.objects.all())


def test_arxiv_categories_comment_and_journal_reference_are_kept(samples):
    from papers.importers import import_source

    import_source(str(samples / "arxiv-cs-cl.xml"))

    bert = Paper.objects.get(arxiv_id="1810.04805")
    assert bert.journal_ref == "Proceedings of NAACL-HLT 2019, pages 4171-4186"
    distilling = Paper.objects.get(arxiv_id="1503.02531")
    # The primary category first, then the others, each once.
    assert distilling.categories == ["stat.ML", "cs.LG", "cs.NE"]
    assert distilling.arxiv_comment == "NIPS 2014 Deep Learning Workshop"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"githubRepo": "javascript:alert(1)"},
            "code url 'javascript:alert(1)' is not an http(s) URL",
        ),
        ({"projectPage": 42}, "'projectPage' must be a string"),
        ({"githubStars": "many"}, "'githubStars' is not a whole number"),
        ({"githubStars": -1}, "code stars -1 is out of range"),
        ({"ai_keywords": "one, two"}, "'ai_keywords' must be a list of strings"),
        ({"ai_keywords": ["x" * 201]}, "the keywords are too many or too long"),
        ({"ai_summary": "x" * 5001}, "the ai summary is longer than 5000 characters"),
    ],
)
def test_a_bad_field_rejects_the_whole_feed_and_stores_nothing(
    feed_server, samples, settings, change, message
):
    folder, base = feed_server
    items = json.loads((samples / "hf-daily-papers-2026-08-21.json").read_text())
    items[3]["paper"].update(change)
    (folder / "api").mkdir()
    (folder / "api" / "daily_papers").write_text(json.dumps(items))
    settings.PAPERBOY_FEED_URLS = [f"{base}/api/daily_papers"]

    with mock.patch.object(tasks.import_feed, "apply_async") as retry:
        [result] = tasks.import_feeds().values()

    assert result.startswith("failed: 1 record(s) rejected")
    assert Paper.objects.count() == 0
    run = ImportRun.objects.get()
    assert message in run.error
    assert items[3]["paper"]["id"] in run.error
    # Content that does not parse would not parse a minute later either.
    retry.assert_not_called()


def test_an_unreachable_feed_is_recorded_and_tried_again_later_and_later(feed_server, settings):
    _, base = feed_server
    url = f"{base}/api/daily_papers"  # nothing there: the server answers 404
    settings.PAPERBOY_FEED_URLS = [url]

    with mock.patch.object(tasks.import_feed, "apply_async") as retry:
        results = tasks.import_feeds()
        delays = [retry.call_args.kwargs["countdown"]]
        for attempt in range(1, feeds.RETRIES + 1):
            retry.reset_mock()
            assert retry.call_args is None
            result = tasks.import_feed(url, attempt)
            if attempt < feeds.RETRIES:
                assert retry.call_args.args == ((url, attempt + 1),)
                delays.append(retry.call_args.kwargs["countdown"])
            else:
                retry.assert_not_called()

    assert (
        results[url]
        == f"failed: could not fetch {url} (Trying again in about "
        + results[url].split("about ")[1]
    )
    for attempt, delay in enumerate(delays):
        # At least half the first delay; at most twice as long as the previous bound.
        assert (
            feeds.RETRY_DELAY / 2 <= delay <= feeds.RETRY_DELAY / 2 + feeds.RETRY_DELAY * 2**attempt
        )
    assert sum(delays) < 20 * 60, "all tries are over well before the next hourly import"
    assert result.endswith("(Not tried again before the next scheduled import.)")
    runs = list(ImportRun.objects.order_by("pk"))
    assert [run.status for run in runs] == [ImportRun.Status.FAILED] * (1 + feeds.RETRIES)
    # The same neutral words each time: no status code, no traceback.
    assert runs[0].error.splitlines()[0] == f"could not fetch {url}"
    assert runs[0].error.splitlines()[1].startswith("Trying again in about ")
    assert runs[-1].error.splitlines()[1] == "Not tried again before the next scheduled import."


def test_a_feed_back_after_a_failure_is_imported_by_its_retry(feed_server, samples, settings):
    folder, base = feed_server
    url = f"{base}/api/daily_papers"
    settings.PAPERBOY_FEED_URLS = [url]
    with mock.patch.object(tasks.import_feed, "apply_async") as retry:
        tasks.import_feeds()
    hf_api(folder, samples)

    result = tasks.import_feed(*retry.call_args.args[0])

    assert result.startswith("58 created")
    [status] = feeds.statuses()
    assert status.last_success.status == ImportRun.Status.SUCCEEDED
    assert status.last_failure.status == ImportRun.Status.FAILED
    assert not status.failing


def test_the_dashboard_shows_each_feeds_last_success_and_last_failure(
    admin_client, feed_server, samples, settings
):
    folder, base = feed_server
    hf_api(folder, samples)
    good, bad = f"{base}/api/daily_papers", f"{base}/api/daily_papers?sort=trending&x=1"
    settings.PAPERBOY_FEED_URLS = [good]
    tasks.import_feeds()
    (folder / "api" / "daily_papers").unlink()
    with mock.patch.object(tasks.import_feed, "apply_async"):
        tasks.import_feeds()
    hf_api(folder, samples)
    tasks.import_feeds()
    settings.PAPERBOY_FEED_URLS = [good, bad]
    (folder / "api" / "daily_papers").unlink()
    with mock.patch.object(tasks.import_feed, "apply_async"):
        tasks.import_feed(bad, feeds.RETRIES)

    page = admin_client.get(reverse("admin:index")).content.decode()

    good_status, bad_status = feeds.statuses()
    assert not good_status.failing and bad_status.failing and bad_status.last_success is None
    feeds_section = page.split("<h3>Feeds</h3>")[1].split("<h3>")[0]
    first, second = feeds_section.split("<li>")[1:]
    assert "last imported" in first and "last failed" in first and "failing" not in first
    assert reverse("admin:papers_importrun_change", args=[good_status.last_success.pk]) in first
    assert reverse("admin:papers_importrun_change", args=[good_status.last_failure.pk]) in first
    assert "never imported yet" in second and "<strong>failing</strong> since" in second
    assert "could not fetch" in second


def test_the_dashboard_says_when_no_feed_is_configured(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()

    assert "None configured: papers arrive only when imported by hand" in page


def test_the_banner_says_whether_feeds_are_on(settings):
    def banner():
        out = io.StringIO()
        call_command("feeds", "--banner", stdout=out)
        return out.getvalue().strip()

    assert banner() == "Feeds:      off (PAPERBOY_FEED_URLS is empty)"
    settings.PAPERBOY_FEED_URLS = [f"{HF}?limit=100", f"{HF}?sort=trending&limit=100"]
    assert banner() == (
        "Feeds:      on (every hour): Hugging Face daily papers, Hugging Face trending papers"
    )
    PeriodicTask.objects.filter(task="papers.import_feeds").update(enabled=False)
    assert banner().startswith("Feeds:      off (the periodic task")


def test_a_feed_never_tried_is_what_a_starting_worker_imports(feed_server, samples, settings):
    folder, base = feed_server
    hf_api(folder, samples)
    settings.PAPERBOY_FEED_URLS = [f"{base}/api/daily_papers"]
    assert feeds.never_tried()

    tasks.import_feeds()

    assert not feeds.never_tried()
    settings.PAPERBOY_ARXIV_CATEGORIES = ["cs.LG"]
    assert feeds.never_tried(), "a feed just added is new too"


def test_a_retry_of_a_feed_taken_out_meanwhile_fetches_nothing(feed_server, settings):
    _, base = feed_server
    settings.PAPERBOY_FEED_URLS = [f"{base}/api/daily_papers"]

    assert tasks.import_feed(f"{base}/gone.json", 1) == "no longer configured"
    assert not ImportRun.objects.exists()
