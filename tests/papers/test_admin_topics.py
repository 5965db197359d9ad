"""The topics admin and papers.topics: counts that link to filtered lists, previewing
terms before saving them, promoting interests and merging topics."""

import datetime as dt
import re
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from digest.models import DigestItem, Feedback
from papers.importers import import_source
from papers.models import PaperTopic, Topic
from papers.topics import merge_topics, preview_terms, promote_to_curated
from tests.papers.test_admin_papers import (
    count_queries,
    form_data,
    message_texts,
    post_action,
    results,
)
from tests.support.factories import (
    DigestFactory,
    PaperFactory,
    SubscriberFactory,
    TopicFactory,
    match,
)

pytestmark = pytest.mark.django_db

TOPICS = reverse("admin:papers_topic_changelist")
CURATED = Topic.Kind.CURATED
INTEREST = Topic.Kind.INTEREST
PINNED = PaperTopic.Curation.PINNED
EXCLUDED = PaperTopic.Curation.EXCLUDED


@pytest.fixture
def non_staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader", password="x" * 20))
    return client


def href(html) -> str:
    return unescape(re.search(r'href="([^"]+)"', html)[1])


def follow(topic, *subscribers):
    for subscriber in subscribers:
        subscriber.topics.add(topic)


# The list


def test_the_topic_list_counts_subscribers_and_this_weeks_matches(admin_client):
    topic = TopicFactory(name="Counted", kind=INTEREST)
    follow(topic, *SubscriberFactory.create_batch(3))
    SubscriberFactory().topics.add(TopicFactory(name="Someone else's"))
    long_ago = timezone.now() - dt.timedelta(days=20)
    match(PaperFactory(), topic, score=1.5)
    match(PaperFactory(), topic, score=0.2, curation=PINNED)
    match(PaperFactory(), topic, score=0.4)  # below the threshold
    match(PaperFactory(), topic, score=3, curation=EXCLUDED)
    match(PaperFactory(hidden=True), topic, score=3)
    match(PaperFactory(ingested_at=long_ago), topic, score=3)

    response = admin_client.get(TOPICS, {"q": "Counted"})

    [row] = results(response)
    assert (row.subscriber_count, row.recent_match_count) == (3, 2)


def test_each_count_links_to_the_list_it_counts(admin_client):
    topic = TopicFactory(name="Linked", kind=INTEREST)
    follow(topic, *SubscriberFactory.create_batch(2))
    SubscriberFactory()
    for _ in range(3):
        match(PaperFactory(), topic, score=2)
    match(PaperFactory(ingested_at=timezone.now() - dt.timedelta(days=9)), topic, score=2)
    match(PaperFactory(), TopicFactory(), score=2)
    listed = admin_client.get(TOPICS, {"q": "Linked"})
    [row] = results(listed)
    topic_admin = listed.context["cl"].model_admin

    subscribers_url = href(topic_admin.subscriber_count(row))
    papers_url = href(topic_admin.recent_match_count(row))
    subscribers = admin_client.get(subscribers_url)
    papers = admin_client.get(papers_url)

    assert subscribers_url.startswith(reverse("admin:subscriptions_subscriber_changelist"))
    assert f"topics__id__exact={topic.pk}" in subscribers_url
    assert subscribers.context["cl"].result_count == row.subscriber_count == 2
    assert papers.context["cl"].result_count == row.recent_match_count == 3
    assert topic_admin.subscriber_count(row) in listed.content.decode()


def _topics_with_subscribers_and_matches(count):
    topics = TopicFactory.create_batch(count, kind=INTEREST)
    subscribers = SubscriberFactory.create_batch(3)
    papers = PaperFactory.create_batch(3)
    Follow = Topic.subscribers.through
    Follow.objects.bulk_create(
        Follow(topic=topic, subscriber=subscriber) for topic in topics for subscriber in subscribers
    )
    PaperTopic.objects.bulk_create(
        PaperTopic(paper=paper, topic=topic, score=2.0) for paper in papers for topic in topics
    )


def test_the_topic_list_runs_as_many_queries_for_200_rows_as_for_10(admin_client):
    params = {"all": "", "kind__exact": INTEREST}

    _topics_with_subscribers_and_matches(10)
    few, few_rows = count_queries(admin_client, TOPICS, params)
    _topics_with_subscribers_and_matches(190)
    many, many_rows = count_queries(admin_client, TOPICS, params)

    assert (few_rows, many_rows) == (10, 200)
    assert few == many


# Previewing terms


def change_url(topic):
    return reverse("admin:papers_topic_change", args=[topic.pk])


def preview_rows(response):
    assert response.status_code == 200, response
    return {(row.paper.pk, row.score, tuple(row.terms)) for row in response.context["preview_rows"]}


NEW_TERMS = "continual learning\ncatastrophic forgetting\nexperience replay\nLLM"


def test_the_preview_shows_the_matches_that_saving_stores(admin_client, samples):
    import_source(str(samples / "trending-papers-page.txt"))
    topic = Topic.objects.get(slug="continual-learning")
    stored_before = set(PaperTopic.objects.filter(topic=topic).values_list("paper", "score"))
    url = change_url(topic)
    data = {**form_data(admin_client.get(url)), "terms": NEW_TERMS}

    previewed = admin_client.post(url, {**data, "_preview": "Preview matches"})

    rows = preview_rows(previewed)
    # Nothing saved: the form is shown again, with the terms as typed.
    topic.refresh_from_db()
    assert topic.terms != NEW_TERMS
    assert set(PaperTopic.objects.filter(topic=topic).values_list("paper", "score")) == (
        stored_before
    )
    assert previewed.context["adminform"].form["terms"].value() == NEW_TERMS
    assert b'id="preview-matches"' in previewed.content
    reaching = [r for r in previewed.context["preview_rows"] if r.reaches_threshold]
    assert 0 < len(reaching) < len(rows)
    assert previewed.context["preview_matching"] == len(reaching)

    saved = admin_client.post(url, {**data, "_save": "Save"})

    assert saved.status_code == 302
    stored = {
        (paper_id, stored_score, tuple(terms))
        for paper_id, stored_score, terms in PaperTopic.objects.filter(topic=topic).values_list(
            "paper", "score", "matched_terms"
        )
    }
    assert rows == stored
    assert {r.paper.pk for r in reaching} == set(
        PaperTopic.objects.matching().filter(topic=topic).values_list("paper", flat=True)
    )


def test_a_preview_of_an_invalid_form_shows_the_errors_and_no_matches(admin_client):
    topic = TopicFactory()
    url = change_url(topic)
    data = {**form_data(admin_client.get(url)), "name": "", "_preview": "Preview matches"}

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert response.context["errors"]
    assert "preview_rows" not in response.context


def test_a_new_topic_can_be_previewed_before_it_exists(admin_client):
    paper = PaperFactory(title="Protein folding with diffusion", abstract="")
    data = {
        "name": "Protein folding",
        "slug": "protein-folding",
        "kind": CURATED,
        "description": "",
        "terms": "protein folding",
        "_preview": "Preview matches",
    }

    response = admin_client.post(reverse("admin:papers_topic_add"), data)

    assert [row.paper for row in response.context["preview_rows"]] == [paper]
    assert not Topic.objects.filter(slug="protein-folding").exists()


def test_the_preview_marks_the_curators_decisions_and_leaves_out_old_papers():
    topic = TopicFactory(terms="sparse things")
    match(PaperFactory(title="Sparse things, excluded"), topic, score=2, curation=EXCLUDED)
    PaperFactory(title="Sparse things, too old", ingested_at=timezone.now() - dt.timedelta(days=45))

    rows = preview_terms("sparse things", topic)

    assert [(row.paper.title, row.curation) for row in rows] == [
        ("Sparse things, excluded", EXCLUDED)
    ]


def test_the_change_page_lists_the_stored_matches(admin_client):
    topic = TopicFactory(name="Shown")
    match(PaperFactory(title="Stored and matching"), topic, score=2)
    match(PaperFactory(title="Stored but weak"), topic, score=0.3)

    response = admin_client.get(change_url(topic))

    assert [row.paper.title for row in response.context["stored_matches"]] == [
        "Stored and matching"
    ]
    assert b"Stored and matching" in response.content
    assert b'name="_preview"' in response.content


# Promoting


def test_promote_asks_before_changing_anything(admin_client):
    interest = TopicFactory(kind=INTEREST)

    response = post_action(admin_client, TOPICS, "promote", [interest])

    assert response.status_code == 200
    assert response.templates[0].name == "admin/confirm_action.html"
    interest.refresh_from_db()
    assert interest.kind == INTEREST


def test_a_confirmed_promote_makes_the_interests_curated(admin_client):
    interests = TopicFactory.create_batch(2, kind=INTEREST)
    untouched = TopicFactory(kind=INTEREST)

    response = post_action(admin_client, TOPICS, "promote", interests, confirmed=True)

    assert response.status_code == 302
    assert set(
        Topic.objects.filter(pk__in=[t.pk for t in interests]).values_list("kind", flat=True)
    ) == {CURATED}
    untouched.refresh_from_db()
    assert untouched.kind == INTEREST
    assert message_texts(response) == ["Promoted 2 topics."]


def test_promote_with_select_across_promotes_every_interest_the_filter_shows(admin_client):
    TopicFactory.create_batch(3, kind=INTEREST, description="batch")
    url = f"{TOPICS}?q=batch"
    shown = Topic.objects.filter(description="batch")

    asked = post_action(admin_client, url, "promote", shown[:1], select_across=True)
    assert asked.context["count"] == 3
    assert Topic.objects.interests().filter(description="batch").count() == 3

    post_action(admin_client, url, "promote", shown[:1], select_across=True, confirmed=True)

    assert not Topic.objects.interests().exists()


def test_promoting_topics_that_are_already_curated_changes_nothing(admin_client):
    curated = TopicFactory(kind=CURATED)

    response = post_action(admin_client, TOPICS, "promote", [curated])

    assert response.status_code == 302
    assert message_texts(response) == ["None of the selected topics is a subscriber interest."]


def test_promote_to_curated_counts_only_interests():
    topics = [TopicFactory(kind=INTEREST), TopicFactory(kind=CURATED)]

    assert promote_to_curated(Topic.objects.filter(pk__in=[t.pk for t in topics])) == 1


# Merging, through the admin


def test_merge_asks_which_topic_survives_before_changing_anything(admin_client):
    chat = TopicFactory(name="Chat models", kind=CURATED)
    chatbots = TopicFactory(name="Chatbots", kind=INTEREST)
    follow(chatbots, SubscriberFactory())

    response = post_action(admin_client, TOPICS, "merge", [chat, chatbots])

    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.fields["survivor"].queryset) == {chat, chatbots}
    assert form.fields["survivor"].initial == chat.pk
    assert Topic.objects.filter(pk__in=[chat.pk, chatbots.pk]).count() == 2
    assert chatbots.subscribers.count() == 1


def test_a_confirmed_merge_folds_the_others_into_the_chosen_topic(admin_client):
    chat = TopicFactory(name="Chat models", terms="chat model")
    chatbots = TopicFactory(name="Chatbots", kind=INTEREST, terms="chatbot")
    reader = SubscriberFactory()
    follow(chatbots, reader)

    response = post_action(
        admin_client, TOPICS, "merge", [chat, chatbots], confirmed=True, survivor=chat.pk
    )

    assert response.status_code == 302
    assert not Topic.objects.filter(pk=chatbots.pk).exists()
    assert list(reader.topics.all()) == [chat]
    assert message_texts(response)[0].startswith("Merged Chatbots into Chat models")


def test_merge_with_select_across_merges_every_topic_the_filter_shows(admin_client):
    topics = TopicFactory.create_batch(3, kind=INTEREST, description="duplicates")
    TopicFactory(kind=INTEREST, description="unrelated")
    url = f"{TOPICS}?q=duplicates"

    asked = post_action(admin_client, url, "merge", topics[:1], select_across=True)
    assert asked.context["count"] == 3
    assert set(asked.context["form"].fields["survivor"].queryset) == set(topics)

    post_action(
        admin_client,
        url,
        "merge",
        topics[:1],
        select_across=True,
        confirmed=True,
        survivor=topics[1].pk,
    )

    assert list(Topic.objects.filter(description="duplicates")) == [topics[1]]
    assert Topic.objects.filter(description="unrelated").exists()


def test_a_merge_needs_two_topics_and_a_survivor_among_them(admin_client):
    one, two, outsider = TopicFactory.create_batch(3)

    alone = post_action(admin_client, TOPICS, "merge", [one], confirmed=True, survivor=one.pk)
    wrong = post_action(
        admin_client, TOPICS, "merge", [one, two], confirmed=True, survivor=outsider.pk
    )

    assert message_texts(alone) == ["Select between 2 and 50 topics to merge."]
    assert wrong.status_code == 200
    assert wrong.context["form"].errors["survivor"]
    assert Topic.objects.filter(pk__in=[one.pk, two.pk, outsider.pk]).count() == 3


@pytest.mark.parametrize("action", ["promote", "merge"])
def test_non_staff_cannot_run_topic_actions(non_staff_client, action):
    topics = TopicFactory.create_batch(2, kind=INTEREST)

    response = post_action(
        non_staff_client, TOPICS, action, topics, confirmed=True, survivor=topics[0].pk
    )

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert Topic.objects.filter(pk__in=[t.pk for t in topics], kind=INTEREST).count() == 2


# Merging, the function


def test_merged_subscribers_follow_the_survivor_once_each():
    survivor, first, second = TopicFactory.create_batch(3)
    both, only_first, already = SubscriberFactory.create_batch(3)
    follow(first, both, only_first)
    follow(second, both, already)
    follow(survivor, already)
    bystander = SubscriberFactory()
    follow(TopicFactory(), bystander)

    result = merge_topics(survivor, [first, second])

    assert set(survivor.subscribers.all()) == {both, only_first, already}
    Follow = Topic.subscribers.through
    assert Follow.objects.filter(topic=survivor).count() == 3
    assert result.subscribers_moved == 2
    assert not Topic.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert bystander.topics.count() == 1


def test_the_survivor_gains_the_others_terms_once_and_is_rescored():
    survivor = TopicFactory(terms="diffusion models\nscore matching")
    other = TopicFactory(terms="Diffusion Models\nflow matching")
    paper = PaperFactory(title="Flow matching for flow matching", abstract="")
    assert not PaperTopic.objects.matching().filter(topic=survivor).exists()

    result = merge_topics(survivor, [other])

    survivor.refresh_from_db()
    assert survivor.term_list == ["diffusion models", "score matching", "flow matching"]
    assert result.terms_added == ["flow matching"]
    assert PaperTopic.objects.matching().filter(topic=survivor, paper=paper).exists()


def test_feedback_and_ledger_topic_ids_point_at_the_survivor():
    survivor, first, second, kept = TopicFactory.create_batch(4)
    reader = SubscriberFactory()
    papers = PaperFactory.create_batch(4)
    votes = [
        Feedback.objects.create(subscriber=reader, paper=papers[0], vote=1, topic_ids=[first.pk]),
        Feedback.objects.create(
            subscriber=reader, paper=papers[1], vote=-1, topic_ids=[survivor.pk, second.pk, kept.pk]
        ),
        Feedback.objects.create(
            subscriber=reader, paper=papers[2], vote=1, topic_ids=[first.pk, second.pk]
        ),
        Feedback.objects.create(subscriber=reader, paper=papers[3], vote=1, topic_ids=[kept.pk]),
    ]
    digest = DigestFactory(subscriber=reader)
    item = DigestItem.objects.create(
        digest=digest, paper=papers[0], position=1, topic_ids=[kept.pk, first.pk]
    )

    result = merge_topics(survivor, [first, second])

    assert [Feedback.objects.get(pk=v.pk).topic_ids for v in votes] == [
        [survivor.pk],
        [survivor.pk, kept.pk],
        [survivor.pk],
        [kept.pk],
    ]
    item.refresh_from_db()
    assert item.topic_ids == [kept.pk, survivor.pk]
    assert (result.feedback_rewritten, result.ledger_rewritten) == (3, 1)


def test_topic_ids_that_only_share_digits_with_a_merged_one_stay():
    survivor = TopicFactory()
    merged = TopicFactory()
    lookalikes = [merged.pk * 10, merged.pk * 10 + merged.pk, merged.pk + 1000]
    vote = Feedback.objects.create(
        subscriber=SubscriberFactory(), paper=PaperFactory(), vote=1, topic_ids=lookalikes
    )

    merge_topics(survivor, [merged])

    vote.refresh_from_db()
    assert vote.topic_ids == lookalikes


def test_pins_and_exclusions_carry_over_where_the_survivor_has_none():
    survivor, first, second = TopicFactory.create_batch(3, terms="protein folding")
    carried_pin, carried_exclusion, survivor_decides, disputed = (
        PaperFactory(title=title, abstract="")
        for title in ["Carried pin", "Carried exclusion", "Survivor decides", "Disputed"]
    )
    match(carried_pin, first, score=0.1, curation=PINNED)
    match(carried_exclusion, second, score=2, curation=EXCLUDED)
    match(carried_exclusion, survivor, score=2)
    match(survivor_decides, first, score=0.1, curation=PINNED)
    match(survivor_decides, survivor, score=2, curation=EXCLUDED)
    match(disputed, first, score=0.1, curation=PINNED)
    match(disputed, second, score=0.1, curation=EXCLUDED)

    result = merge_topics(survivor, [first, second])

    decisions = dict(
        PaperTopic.objects.filter(topic=survivor).values_list("paper__title", "curation")
    )
    assert decisions.get("Carried pin") == PINNED
    assert decisions.get("Carried exclusion") == EXCLUDED
    assert decisions.get("Survivor decides") == EXCLUDED
    assert decisions.get("Disputed", "") == ""
    assert result.curations_carried == 2
    matched = PaperTopic.objects.matching().filter(topic=survivor)
    assert set(matched.values_list("paper__title", flat=True)) == {"Carried pin"}


def test_a_merge_is_all_or_nothing(monkeypatch):
    survivor, other = TopicFactory.create_batch(2)
    reader = SubscriberFactory()
    follow(other, reader)

    def fail(*args, **kwargs):
        raise RuntimeError("rescoring failed")

    monkeypatch.setattr("papers.topics.matching.rescore_topic", fail)
    with pytest.raises(RuntimeError):
        merge_topics(survivor, [other])

    assert list(reader.topics.all()) == [other]
    assert Topic.objects.filter(pk=other.pk).exists()


def test_merging_a_topic_into_itself_is_refused():
    topic = TopicFactory()

    with pytest.raises(ValueError, match="besides the survivor"):
        merge_topics(topic, [topic])


def test_the_threshold_setting_decides_what_the_preview_marks(settings):
    settings.PAPERBOY_MATCH_THRESHOLD = 100
    PaperFactory(title="Sparse things")

    [row] = preview_terms("sparse things")

    assert row.score > 0
    assert not row.reaches_threshold
