import pytest
from django.urls import reverse

from digest.models import Digest, DigestItem
from papers.importers import import_source
from papers.models import ImportRun, Paper, Topic
from subscriptions.models import Subscriber
from tests.support.factories import DigestFactory, PaperFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

MODELS = [Paper, Topic, Digest, ImportRun, Subscriber]


def changelist(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.mark.parametrize("model", MODELS)
def test_staff_see_every_changelist(admin_client, model):
    digest = DigestFactory()
    DigestItem.objects.create(digest=digest, paper=PaperFactory(), position=1)

    response = admin_client.get(changelist(model))

    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_visitors_and_non_staff_are_sent_to_the_login(client, django_user_model, model):
    assert client.get(changelist(model)).status_code == 302
    client.force_login(django_user_model.objects.create_user("reader", password="x" * 20))
    response = client.get(changelist(model))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_paper_list_shows_the_imported_page(admin_client, samples):
    import_source(str(samples / "trending-papers-page.txt"))

    response = admin_client.get(changelist(Paper), {"q": "continual"})

    assert response.status_code == 200
    titles = {paper.title for paper in response.context["cl"].result_list}
    assert "Continual Learning of Large Language Models: A Comprehensive Survey" in titles
    assert all(
        "continual" in (p.title + p.abstract).lower() for p in response.context["cl"].result_list
    )
    assert response.context["cl"].full_result_count == 72


def test_the_paper_list_filters_hidden_papers(admin_client):
    PaperFactory(title="Shown")
    PaperFactory(title="Kept out", hidden=True)

    response = admin_client.get(changelist(Paper), {"hidden__exact": "1"})

    assert [p.title for p in response.context["cl"].result_list] == ["Kept out"]


def test_the_topic_list_counts_subscribers(admin_client):
    topic = Topic.objects.get(slug="continual-learning")
    for _ in range(3):
        SubscriberFactory().topics.add(topic)

    response = admin_client.get(changelist(Topic), {"q": "continual"})

    row = next(t for t in response.context["cl"].result_list if t == topic)
    assert row.subscriber_count == 3


def test_a_digest_shows_its_papers(admin_client):
    digest = DigestFactory()
    paper = PaperFactory(title="In the digest")
    DigestItem.objects.create(digest=digest, paper=paper, position=1, reason="continual learning")

    response = admin_client.get(reverse("admin:digest_digest_change", args=[digest.pk]))

    assert b"In the digest" in response.content
    assert b"continual learning" in response.content


def test_curators_can_see_the_feed_schedule(admin_client):
    response = admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist"))
    assert b"Import paper feeds" in response.content
