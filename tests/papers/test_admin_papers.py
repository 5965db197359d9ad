"""The papers admin: topic columns and filter, bulk actions behind a confirmation page,
pins and exclusions, and changelists whose query count does not grow with the page."""

import datetime as dt

import pytest
import time_machine
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.db import connection
from django.forms import CheckboxInput
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from papers.matching import score_papers
from papers.models import Paper, PaperTopic, Topic
from tests.support.factories import PaperFactory, TopicFactory, match

pytestmark = pytest.mark.django_db

PAPERS = reverse("admin:papers_paper_changelist")


# Helpers, also used by test_admin_topics.py


def post_action(client, url, action, objects=(), *, confirmed=False, select_across=False, **data):
    """Post an admin action as the changelist (or its confirmation page) would."""
    payload = {
        "action": action,
        "index": 0,
        ACTION_CHECKBOX_NAME: [obj.pk for obj in objects],
        **data,
    }
    if confirmed:
        payload["confirmed"] = "yes"
    if select_across:
        payload["select_across"] = "1"
    return client.post(url, payload)


def message_texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def form_data(response) -> dict:
    """The POST a browser would send for a change page as it was rendered."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field.widget, CheckboxInput):
                if value:
                    data[form.add_prefix(name)] = "on"
            elif value is not None:
                data[form.add_prefix(name)] = value
    return data


def inline_prefix(response, topic) -> str:
    """The form prefix of a topic's row in the paper's topic scores."""
    for inline in response.context["inline_admin_formsets"]:
        for form in inline.formset.forms:
            if form.instance.pk and form.instance.topic_id == topic.pk:
                return form.prefix
    raise AssertionError(f"no stored score for {topic}")


def pin_prefix(response) -> str:
    """The prefix of the empty "pin or exclude another topic" row."""
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        if formset.model is PaperTopic and not formset.initial_forms and formset.extra_forms:
            return inline.formset.extra_forms[0].prefix
    raise AssertionError("no pin row")


def results(response) -> list:
    return list(response.context["cl"].result_list)


@pytest.fixture
def non_staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader", password="x" * 20))
    return client


# The list


def test_the_paper_list_shows_the_topics_each_paper_matches(admin_client):
    paper = PaperFactory(title="Sparse and pinned")
    strong, pinned, weak, excluded = (
        # Interests, which the topic filter in the sidebar does not list.
        TopicFactory(name=name, kind=Topic.Kind.INTEREST)
        for name in ["Strong", "Pinned", "Weak", "Excluded"]
    )
    match(paper, strong, score=2.0)
    match(paper, pinned, score=0.1, curation=PaperTopic.Curation.PINNED)
    match(paper, weak, score=0.5)
    match(paper, excluded, score=3.0, curation=PaperTopic.Curation.EXCLUDED)

    response = admin_client.get(PAPERS, {"q": "Sparse and pinned"})

    assert response.status_code == 200
    [row] = results(response)
    assert [m.topic.name for m in row.matches] == ["Strong", "Pinned"]
    content = response.content.decode()
    assert f'href="{PAPERS}?topic={strong.pk}"' in content
    assert ">Weak<" not in content
    assert ">Excluded<" not in content


def test_the_paper_list_links_to_arxiv(admin_client):
    paper = PaperFactory(arxiv_id="2404.16789")

    response = admin_client.get(PAPERS)
    change = admin_client.get(reverse("admin:papers_paper_change", args=[paper.pk]))

    assert b'href="https://arxiv.org/abs/2404.16789"' in response.content
    assert b'href="https://arxiv.org/abs/2404.16789"' in change.content


def _papers_with_topics(count, topics):
    papers = PaperFactory.create_batch(count)
    PaperTopic.objects.bulk_create(
        PaperTopic(paper=paper, topic=topic, score=2.0, matched_terms=["sparse things"])
        for paper in papers
        for topic in topics
    )


def count_queries(client, url, params) -> tuple[int, int]:
    """Queries to render the list once warm, and the rows it showed."""
    client.get(url, params)  # the session and anything cached on first use
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(queries), len(results(response))


def test_the_paper_list_runs_as_many_queries_for_200_rows_as_for_10(admin_client):
    topics = TopicFactory.create_batch(4)
    # "all" shows every row on one page (up to list_max_show_all, 200).
    params = {"all": "", "topic": str(topics[0].pk), "featured__exact": "0"}

    _papers_with_topics(10, topics)
    few, few_rows = count_queries(admin_client, PAPERS, params)
    _papers_with_topics(190, topics)
    many, many_rows = count_queries(admin_client, PAPERS, params)

    assert (few_rows, many_rows) == (10, 200)
    assert few == many


# Filters


def test_the_topic_filter_lists_curated_topics_only(admin_client):
    curated = TopicFactory(name="Curated one")
    interest = TopicFactory(name="Someone's interest", kind=Topic.Kind.INTEREST)

    response = admin_client.get(PAPERS)

    [topic_filter] = [f for f in response.context["cl"].filter_specs if f.title == "topic"]
    listed = {name for _, name in topic_filter.lookup_choices}
    assert curated.name in listed
    assert interest.name not in listed


def test_the_topic_filter_shows_the_papers_a_topic_matches(admin_client):
    topic = TopicFactory(kind=Topic.Kind.INTEREST)
    matched = PaperFactory(title="Matched")
    pinned = PaperFactory(title="Pinned")
    match(matched, topic, score=1.5)
    match(pinned, topic, score=0.2, curation=PaperTopic.Curation.PINNED)
    match(PaperFactory(title="Too weak"), topic, score=0.4)
    match(PaperFactory(title="Excluded"), topic, score=3, curation=PaperTopic.Curation.EXCLUDED)
    match(PaperFactory(title="Hidden", hidden=True), topic, score=3)
    PaperFactory(title="Unscored")

    # An interest topic is not in the sidebar, but a link from its row names it.
    response = admin_client.get(PAPERS, {"topic": str(topic.pk)})

    assert {p.title for p in results(response)} == {"Matched", "Pinned"}
    [topic_filter] = [f for f in response.context["cl"].filter_specs if f.title == "topic"]
    assert (str(topic.pk), topic.name) in topic_filter.lookup_choices


def test_a_topic_filter_that_is_not_an_id_shows_the_error_page(admin_client):
    response = admin_client.get(PAPERS, {"topic": "nonsense"})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"featured__exact": "1"}, {"Featured"}),
        ({"hidden__exact": "1"}, {"Hidden"}),
        ({"source__exact": Paper.Source.ARXIV_ATOM}, {"From arXiv"}),
        ({"published_on__gte": "2026-01-01", "published_on__lt": "2027-01-01"}, {"This year"}),
        (
            {"ingested_at__gte": "2026-03-01 00:00:00+00:00"},
            {"Plain", "Featured", "Hidden", "From arXiv", "This year"},
        ),
    ],
)
def test_the_flag_source_and_date_filters(admin_client, params, expected):
    with time_travel("2026-03-15"):
        PaperFactory(title="Plain")
        PaperFactory(title="Featured", featured=True)
        PaperFactory(title="Hidden", hidden=True)
        PaperFactory(title="From arXiv", source=Paper.Source.ARXIV_ATOM)
        PaperFactory(title="This year", published_on=dt.date(2026, 3, 1))
    PaperFactory(title="Old", ingested_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))

    response = admin_client.get(PAPERS, params)

    assert {p.title for p in results(response)} == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("Needle in the title", "title"),
        ("haystack abstract", "abstract"),
        ("Grace Hopper", "authors"),
        ("2409.12345", "arxiv id"),
    ],
)
def test_papers_are_found_by_title_abstract_authors_and_arxiv_id(admin_client, query, field):
    PaperFactory(
        title="Needle in the title",
        abstract="A haystack abstract.",
        authors=["Ada Lovelace", "Grace Hopper"],
        arxiv_id="2409.12345",
    )
    PaperFactory(title="Something else")

    response = admin_client.get(PAPERS, {"q": query})

    assert [p.title for p in results(response)] == ["Needle in the title"], field


# Actions


FLAG_ACTIONS = [
    ("feature", "featured", False, True),
    ("unfeature", "featured", True, False),
    ("hide", "hidden", False, True),
    ("unhide", "hidden", True, False),
]


@pytest.mark.parametrize(("action", "flag", "before", "after"), FLAG_ACTIONS)
def test_a_flag_action_asks_before_changing_anything(admin_client, action, flag, before, after):
    papers = PaperFactory.create_batch(3, **{flag: before})

    response = post_action(admin_client, PAPERS, action, papers[:2])

    assert response.status_code == 200
    assert response.templates[0].name == "admin/confirm_action.html"
    assert response.context["count"] == 2
    assert not Paper.objects.filter(**{flag: after}).exists()


@pytest.mark.parametrize(("action", "flag", "before", "after"), FLAG_ACTIONS)
def test_a_confirmed_flag_action_changes_the_selected_papers(
    admin_client, action, flag, before, after
):
    papers = PaperFactory.create_batch(3, **{flag: before})

    response = post_action(admin_client, PAPERS, action, papers[:2], confirmed=True)

    assert response.status_code == 302
    assert set(Paper.objects.filter(**{flag: after})) == set(papers[:2])
    assert message_texts(response) == [f"{message_verb(action)} 2 papers."]


def message_verb(action):
    return {"feature": "Featured", "unfeature": "Unfeatured", "hide": "Hid", "unhide": "Unhid"}[
        action
    ]


@pytest.mark.parametrize(("action", "flag", "before", "after"), FLAG_ACTIONS)
def test_select_across_applies_a_flag_action_to_every_paper_the_filter_shows(
    admin_client, action, flag, before, after
):
    PaperFactory.create_batch(3, source=Paper.Source.ARXIV_ATOM, **{flag: before})
    other = PaperFactory(source=Paper.Source.MANUAL, **{flag: before})
    url = f"{PAPERS}?source__exact={Paper.Source.ARXIV_ATOM}"
    shown = Paper.objects.filter(source=Paper.Source.ARXIV_ATOM)

    asked = post_action(admin_client, url, action, shown[:1], select_across=True)
    assert asked.context["count"] == 3
    assert b'name="select_across" value="1"' in asked.content
    assert not Paper.objects.filter(**{flag: after}).exists()

    post_action(admin_client, url, action, shown[:1], select_across=True, confirmed=True)

    assert set(Paper.objects.filter(**{flag: after})) == set(shown)
    other.refresh_from_db()
    assert getattr(other, flag) == before


def test_rescore_with_select_across_rescores_every_paper_the_filter_shows(admin_client):
    PaperFactory.create_batch(3, source=Paper.Source.ARXIV_ATOM)
    other = PaperFactory(source=Paper.Source.MANUAL)
    topic = TopicFactory(terms="sparse things")
    PaperTopic.objects.all().delete()
    url = f"{PAPERS}?source__exact={Paper.Source.ARXIV_ATOM}"
    shown = Paper.objects.filter(source=Paper.Source.ARXIV_ATOM)

    asked = post_action(admin_client, url, "rescore", shown[:1], select_across=True)
    assert asked.context["count"] == 3
    assert not PaperTopic.objects.exists()

    post_action(admin_client, url, "rescore", shown[:1], select_across=True, confirmed=True)

    assert set(PaperTopic.objects.filter(topic=topic).values_list("paper", flat=True)) == set(
        shown.values_list("pk", flat=True)
    )
    assert not PaperTopic.objects.filter(paper=other).exists()


def test_rescore_asks_first_then_rescores_and_keeps_the_curators_decisions(admin_client):
    topic = TopicFactory(terms="sparse things")
    paper = PaperFactory(title="Sparse things everywhere", abstract="")
    # Stale rows, as if scored under other terms: the rescore corrects them.
    match(paper, topic, score=0.1, terms=["old"], curation=PaperTopic.Curation.EXCLUDED)
    unrelated = TopicFactory(terms="protein folding")
    match(paper, unrelated, score=0.0, terms=[], curation=PaperTopic.Curation.PINNED)

    asked = post_action(admin_client, PAPERS, "rescore", [paper])
    assert asked.status_code == 200
    assert PaperTopic.objects.get(paper=paper, topic=topic).score == 0.1

    done = post_action(admin_client, PAPERS, "rescore", [paper], confirmed=True)

    assert done.status_code == 302
    row = PaperTopic.objects.get(paper=paper, topic=topic)
    assert row.score > 1
    assert row.matched_terms == ["sparse things"]
    assert row.curation == PaperTopic.Curation.EXCLUDED
    assert PaperTopic.objects.get(paper=paper, topic=unrelated).curation == "pinned"
    assert message_texts(done)[0].startswith("Rescored 1 paper:")


@pytest.mark.parametrize("action", ["feature", "unfeature", "hide", "unhide", "rescore"])
def test_non_staff_cannot_run_paper_actions(non_staff_client, action):
    paper = PaperFactory(featured=True, hidden=True, title="Untouched")
    before = Paper.objects.values().get()

    response = post_action(non_staff_client, PAPERS, action, [paper], confirmed=True)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert Paper.objects.values().get() == before


# Pins and exclusions


def change_page(client, paper):
    url = reverse("admin:papers_paper_change", args=[paper.pk])
    return url, client.get(url)


def test_pinning_a_stored_score_puts_the_paper_in_the_topic(admin_client):
    paper = PaperFactory()
    topic = TopicFactory()
    match(paper, topic, score=0.3)
    assert not PaperTopic.objects.matching().filter(topic=topic).exists()
    url, page = change_page(admin_client, paper)
    data = form_data(page)
    data[f"{inline_prefix(page, topic)}-curation"] = PaperTopic.Curation.PINNED

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert list(PaperTopic.objects.matching().filter(topic=topic)) == [
        PaperTopic.objects.get(paper=paper, topic=topic)
    ]


def test_excluding_a_stored_score_takes_the_paper_out_and_a_rescore_keeps_it_out(admin_client):
    paper = PaperFactory(title="Sparse things, sparse things", abstract="")
    topic = TopicFactory(terms="sparse things")
    score_papers([paper])
    assert PaperTopic.objects.matching().filter(topic=topic, paper=paper).exists()
    url, page = change_page(admin_client, paper)
    data = form_data(page)
    data[f"{inline_prefix(page, topic)}-curation"] = PaperTopic.Curation.EXCLUDED

    admin_client.post(url, data)
    score_papers([paper])

    assert not PaperTopic.objects.matching().filter(topic=topic, paper=paper).exists()
    assert PaperTopic.objects.get(topic=topic, paper=paper).score > 1


def test_a_topic_without_a_stored_score_can_be_pinned(admin_client):
    paper = PaperFactory(title="Nothing in common", abstract="")
    topic = TopicFactory(terms="protein folding", kind=Topic.Kind.INTEREST)
    assert not PaperTopic.objects.filter(paper=paper).exists()
    url, page = change_page(admin_client, paper)
    data = form_data(page)
    prefix = pin_prefix(page)
    data[f"{prefix}-topic"] = topic.pk
    data[f"{prefix}-curation"] = PaperTopic.Curation.PINNED

    response = admin_client.post(url, data)

    assert response.status_code == 302
    row = PaperTopic.objects.get(paper=paper, topic=topic)
    assert (row.curation, row.score) == (PaperTopic.Curation.PINNED, 0)
    assert list(PaperTopic.objects.matching().filter(topic=topic)) == [row]
    score_papers([paper])
    assert PaperTopic.objects.get(paper=paper, topic=topic).curation == "pinned"


def test_the_pin_row_finds_any_topic_by_autocomplete(admin_client):
    topic = TopicFactory(name="Protein folding", kind=Topic.Kind.INTEREST)
    params = {
        "app_label": "papers",
        "model_name": "papertopic",
        "field_name": "topic",
        "term": "protein",
    }

    response = admin_client.get(reverse("admin:autocomplete"), params)

    assert response.json()["results"] == [{"id": str(topic.pk), "text": "Protein folding"}]


def test_a_new_pin_must_pin_or_exclude_and_must_not_repeat_a_stored_score(admin_client):
    paper = PaperFactory()
    stored, other = TopicFactory(), TopicFactory(terms="protein folding")
    match(paper, stored)
    url, page = change_page(admin_client, paper)
    prefix = pin_prefix(page)

    as_scored = {**form_data(page), f"{prefix}-topic": other.pk, f"{prefix}-curation": ""}
    repeated = {**form_data(page), f"{prefix}-topic": stored.pk, f"{prefix}-curation": "pinned"}

    for data in (as_scored, repeated):
        response = admin_client.post(url, data)
        assert response.status_code == 200
        assert response.context["errors"]
    assert not PaperTopic.objects.filter(topic=other).exists()
    assert PaperTopic.objects.get(topic=stored).curation == ""


def test_the_change_page_lists_every_stored_score_without_a_query_per_row(admin_client):
    paper = PaperFactory()
    topics = TopicFactory.create_batch(3)
    for topic in topics:
        match(paper, topic)
    url = reverse("admin:papers_paper_change", args=[paper.pk])
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for topic in TopicFactory.create_batch(20):
        match(paper, topic)

    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url)

    assert len(few) == len(many)
    assert response.content.count(b"sparse things") >= 23


def time_travel(day: str):
    return time_machine.travel(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC), tick=False)
