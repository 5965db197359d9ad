import datetime as dt
import io

import pytest
import time_machine
from django.core.management import CommandError, call_command

from papers import feeds, tasks
from papers.importers import ImportFailed, import_source
from papers.models import ImportRun, Paper

pytestmark = pytest.mark.django_db

ATOM_V2 = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <entry>
    <id>http://arxiv.org/abs/2007.05929v2</id>
    <published>2020-07-12T09:12:01Z</published>
    <title>Data-Efficient Reinforcement Learning with Self-Predictive Representations (v2)</title>
    <summary>A revised abstract.</summary>
    <author><name>Max Schwarzer</name></author>
    <link href="http://arxiv.org/abs/2007.05929v2" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2007.05929v2" rel="related"
          type="application/pdf"/>
  </entry>
</feed>
"""


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


@time_machine.travel(dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC), tick=False)
def test_it_imports_the_real_trending_page(samples):
    summary = import_source(str(samples / "trending-papers-page.txt"))

    assert (summary.created, summary.updated, summary.unchanged, summary.rejected) == (72, 0, 0, 0)
    assert Paper.objects.count() == 72
    lines = set((samples / "trending-papers-page.txt").read_text().splitlines())
    for paper in Paper.objects.all():
        assert paper.title in lines, "every title is exactly one line of the page"
        assert paper.abstract in lines
        assert paper.source == Paper.Source.HF_PAGE
        assert paper.arxiv_id is None
        # "Mar 17" with no year: the latest March 17 not after the import.
        assert paper.published_on == dt.date(2026, 3, 17)
    first = Paper.objects.get(
        title="Data-Efficient Reinforcement Learning with Self-Predictive Representations"
    )
    assert first.abstract.startswith("While deep reinforcement learning excels at solving tasks")
    assert first.abstract.endswith("https://github.com/mila-iqia/spr")
    last = Paper.objects.get(
        title="Adaptive Rank, Reduced Forgetting: Knowledge Retention in Continual Learning "
        "Vision-Language Models with Dynamic Rank-Selective LoRA"
    )
    assert last.abstract.endswith("while retaining pre-trained knowledge.")
    assert Paper.objects.filter(
        title="Offline Experience Replay for Continual Offline Reinforcement Learning"
    ).exists()
    assert Paper.objects.filter(
        title__startswith="SEINE: Short-to-Long Video Diffusion Model"
    ).exists()


def test_importing_the_same_source_twice_changes_nothing(samples):
    for name in ("trending-papers-page.txt", "hf-daily-papers.json", "arxiv-atom.xml"):
        import_source(str(samples / name))
    before = list(Paper.objects.order_by("pk").values())

    again = [
        import_source(str(samples / name))
        for name in ("trending-papers-page.txt", "hf-daily-papers.json", "arxiv-atom.xml")
    ]

    assert [(s.created, s.updated) for s in again] == [(0, 0)] * 3
    assert [s.unchanged for s in again] == [72, 3, 2]
    assert list(Paper.objects.order_by("pk").values()) == before


def test_it_imports_hugging_face_daily_papers_json(samples):
    summary = import_source(str(samples / "hf-daily-papers.json"))

    assert summary.created == 3
    paper = Paper.objects.get(arxiv_id="2401.04088")
    assert paper.title == "Mixtral of Experts"
    assert paper.upvotes == 128
    assert paper.authors == ["Albert Q. Jiang", "Alexandre Sablayrolles"]
    assert paper.published_on == dt.date(2024, 1, 8)
    assert paper.abstract_url == "https://arxiv.org/abs/2401.04088"
    assert paper.pdf_url == "https://arxiv.org/pdf/2401.04088"
    assert paper.source == Paper.Source.HF_JSON


def test_it_imports_arxiv_atom(samples):
    summary = import_source(str(samples / "arxiv-atom.xml"))

    assert summary.created == 2
    paper = Paper.objects.get(arxiv_id="2007.05929")
    assert paper.arxiv_version == 1
    # Atom wraps long titles over lines; the stored title is one line.
    assert (
        paper.title == "Data-Efficient Reinforcement Learning with Self-Predictive Representations"
    )
    assert paper.authors == ["Max Schwarzer", "Ankesh Anand"]
    assert paper.pdf_url == "http://arxiv.org/pdf/2007.05929v1"
    assert paper.abstract.startswith("While deep reinforcement learning excels")
    assert paper.source == Paper.Source.ARXIV_ATOM


def test_a_paper_from_the_page_gains_its_arxiv_id_from_a_later_feed(samples):
    import_source(str(samples / "trending-papers-page.txt"))
    summary = import_source(str(samples / "arxiv-atom.xml"))

    assert (summary.created, summary.updated) == (0, 2)
    assert Paper.objects.count() == 72
    paper = Paper.objects.get(arxiv_id="2212.04458")
    assert paper.title == "General-Purpose In-Context Learning by Meta-Learning Transformers"
    assert paper.authors == ["Louis Kirsch", "James Harrison"]


def test_the_page_after_a_feed_does_not_duplicate_papers(samples):
    import_source(str(samples / "hf-daily-papers.json"))
    summary = import_source(str(samples / "trending-papers-page.txt"))

    # Two of the three JSON papers are on the page: matched by their titles.
    assert summary.created == 70
    assert Paper.objects.count() == 73
    assert Paper.objects.get(arxiv_id="2404.16789").upvotes == 42


def test_a_newer_arxiv_version_updates_the_paper(samples, tmp_path):
    import_source(str(samples / "arxiv-atom.xml"))
    summary = import_source(write(tmp_path, "v2.xml", ATOM_V2))

    assert (summary.created, summary.updated) == (0, 1)
    paper = Paper.objects.get(arxiv_id="2007.05929")
    assert paper.arxiv_version == 2
    assert paper.title.endswith("(v2)")
    assert paper.abstract == "A revised abstract."
    assert Paper.objects.filter(title__startswith="Data-Efficient Reinforcement").count() == 1


def test_an_older_arxiv_version_never_overwrites_a_newer_one(samples, tmp_path):
    import_source(write(tmp_path, "v2.xml", ATOM_V2))
    summary = import_source(str(samples / "arxiv-atom.xml"))

    assert summary.created == 1  # the other paper in the feed
    paper = Paper.objects.get(arxiv_id="2007.05929")
    assert (paper.arxiv_version, paper.abstract) == (2, "A revised abstract.")


def page_with(tmp_path, text):
    return write(
        tmp_path, "page.txt", f"Get trending papers in your email inbox!\n\nMar 17\n\n{text}"
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "page.txt",
            "Mar 17\n\nA fine title\n\nA fine abstract.\n\nA title with no abstract\n",
            "line 7: the paper 'A title with no abstract' has no abstract",
        ),
        (
            "page.txt",
            "Mar 17\n\nTitle\n\n" + "x" * 600 + "\n\n" + "y" * 600 + "\n",
            "line 7: expected a paper title",
        ),
        ("page.txt", "Just some text\n\nwith no date line\n", "no date line"),
        ("page.txt", b"Mar 17\n\nTitle\n\nAbstract \xff\xfe\n", "not valid UTF-8 (byte 24)"),
        (
            "feed.json",
            '[{"paper": {"id": "2401.04088", "title": "Ok", "summary": "Ok"}},',
            "invalid JSON at line 1",
        ),
        ("feed.json", '{"paper": []}', "entry 0: expected an object with a 'paper' field"),
        ("feed.json", '"just a string"', "expected a JSON list"),
        ("feed.xml", "<feed xmlns='http://www.w3.org/2005/Atom'><entry>", "invalid XML at line 1"),
        ("feed.xml", "<rss><channel/></rss>", "expected an Atom <feed>"),
        (
            "feed.xml",
            "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]>"
            "<feed xmlns='http://www.w3.org/2005/Atom'><title>&lol2;</title></feed>",
            "refused unsafe XML",
        ),
        (
            "feed.xml",
            "<feed xmlns='http://www.w3.org/2005/Atom'><entry><id>http://arxiv.org/api/errors#incorrect_id</id>"
            "<summary>incorrect id format for 1234</summary></entry></feed>",
            "the arXiv API answered with an error: incorrect id format for 1234",
        ),
    ],
)
def test_malformed_sources_are_refused_whole(tmp_path, name, content, message):
    path = write(tmp_path, name, content)

    with pytest.raises(ImportFailed) as caught:
        import_source(path)

    assert message in " ".join([str(caught.value), *caught.value.errors])
    assert Paper.objects.count() == 0
    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FAILED


def test_one_bad_record_rejects_the_whole_json_source(samples, tmp_path):
    good = (samples / "hf-daily-papers.json").read_text()
    bad = good.replace('"id": "2310.20700"', '"id": "not-an-id"').replace(
        '"upvotes": 128', '"upvotes": "many"'
    )

    with pytest.raises(ImportFailed) as caught:
        import_source(write(tmp_path, "feed.json", bad))

    assert caught.value.rejected == 2
    assert caught.value.errors == [
        "entry 1: 'not-an-id' is not an arXiv id",
        "entry 2: 2401.04088: 'upvotes' is not a whole number",
    ]
    assert Paper.objects.count() == 0


def test_an_arxiv_version_past_what_the_column_holds_is_refused_on_every_database(
    samples, tmp_path
):
    """SQLite would store v99999999; PostgreSQL's smallint refuses it mid-import."""
    good = (samples / "hf-daily-papers.json").read_text()
    bad = good.replace('"id": "2310.20700"', '"id": "2310.20700v99999999"')

    with pytest.raises(ImportFailed) as caught:
        import_source(write(tmp_path, "feed.json", bad))

    assert caught.value.errors == ["entry 2310.20700: arXiv version 99999999 is out of range"]
    assert Paper.objects.count() == 0


def test_a_record_that_fails_validation_rolls_back_the_records_before_it(samples, tmp_path):
    good = (samples / "arxiv-atom.xml").read_text()
    bad = good.replace("http://arxiv.org/pdf/2212.04458v1", "javascript:alert(1)")

    with pytest.raises(ImportFailed) as caught:
        import_source(write(tmp_path, "feed.xml", bad))

    assert caught.value.errors == [
        "entry 2212.04458: pdf url 'javascript:alert(1)' is not an http(s) URL"
    ]
    assert Paper.objects.count() == 0


def test_an_oversized_source_is_refused(tmp_path, settings):
    settings.PAPERBOY_MAX_IMPORT_BYTES = 100
    path = page_with(tmp_path, "Title\n\n" + "word " * 100)

    with pytest.raises(ImportFailed, match="larger than 100 bytes"):
        import_source(path)
    assert Paper.objects.count() == 0


def test_the_command_prints_a_summary(samples):
    out = io.StringIO()
    call_command(
        "import_papers", str(samples / "arxiv-atom.xml"), "--format", "arxiv-atom", stdout=out
    )
    call_command("import_papers", str(samples / "arxiv-atom.xml"), stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].endswith("arxiv-atom.xml: 2 created, 0 updated, 0 unchanged, 0 rejected.")
    assert lines[1].endswith("arxiv-atom.xml: 0 created, 0 updated, 2 unchanged, 0 rejected.")


def test_the_command_names_the_bad_line_and_imports_nothing(tmp_path):
    path = page_with(tmp_path, "Good title\n\nGood abstract.\n\nDangling title\n")
    err = io.StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("import_papers", path, stderr=err)

    assert "line 9: the paper 'Dangling title' has no abstract" in str(caught.value)
    assert "Nothing was imported" in str(caught.value)
    assert Paper.objects.count() == 0


def test_the_command_refuses_a_missing_file():
    with pytest.raises(CommandError, match=r"could not read /nonexistent/feed\.json"):
        call_command("import_papers", "/nonexistent/feed.json")


def test_the_forced_format_must_fit_the_content(samples):
    with pytest.raises(CommandError, match="invalid XML"):
        call_command(
            "import_papers", str(samples / "hf-daily-papers.json"), "--format", "arxiv-atom"
        )


def test_it_imports_from_a_url(feed_server, samples):
    folder, base = feed_server
    (folder / "daily.json").write_bytes((samples / "hf-daily-papers.json").read_bytes())

    summary = import_source(f"{base}/daily.json")

    assert summary.created == 3
    assert ImportRun.objects.get().source == f"{base}/daily.json"


def test_an_unreachable_url_is_a_clear_error(feed_server):
    _, base = feed_server
    # The same words whatever went wrong (core.fetch): no status, no reason.
    with pytest.raises(ImportFailed, match=r"^could not fetch http://\S+/missing.json$"):
        import_source(f"{base}/missing.json")


def test_the_feed_task_imports_every_feed_and_survives_a_broken_one(feed_server, samples, settings):
    folder, base = feed_server
    (folder / "daily.json").write_bytes((samples / "hf-daily-papers.json").read_bytes())
    (folder / "atom.xml").write_bytes((samples / "arxiv-atom.xml").read_bytes())
    settings.PAPERBOY_FEED_URLS = [f"{base}/daily.json", f"{base}/gone.xml", f"{base}/atom.xml"]

    results = tasks.import_feeds()

    assert Paper.objects.count() == 5
    assert results[f"{base}/daily.json"] == "3 created, 0 updated, 0 unchanged, 0 rejected"
    assert results[f"{base}/gone.xml"].startswith("failed: could not fetch")
    # Tried again, each time recorded (eager here: at once).
    assert ImportRun.objects.filter(status=ImportRun.Status.FAILED).count() == 1 + feeds.RETRIES
