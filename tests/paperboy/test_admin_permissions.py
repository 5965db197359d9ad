"""Staff accounts get what their permissions say, not what being staff says: the admin's
own views, its dashboard and its actions."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from digest.models import Digest, DigestItem
from papers.models import Paper, Topic
from subscriptions.models import Subscriber
from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db


def staff(django_user_model, *permissions: str):
    user = django_user_model.objects.create_user(
        username=f"staff{django_user_model.objects.count()}", password="x", is_staff=True
    )
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def sent_digest():
    subscriber = SubscriberFactory(email="reader@example.org")
    paper = PaperFactory()
    digest = Digest.objects.create(
        subscriber=subscriber, period="2026-11-28", scheduled_for="2026-11-28T08:00Z", status="sent"
    )
    DigestItem.objects.create(digest=digest, subscriber=subscriber, paper=paper, position=1)
    return digest


def custom_views(digest: Digest) -> list[tuple[str, str]]:
    """Every view the admin adds to Django's own, with what it takes to reach it."""
    subscriber = digest.subscriber
    return [
        ("get", reverse("admin:digest_digest_email", args=[digest.pk])),
        ("get", reverse("admin:digest_digest_email", args=[digest.pk]) + "?format=text"),
        ("get", reverse("admin:subscriptions_subscriber_preview", args=[subscriber.pk])),
        ("get", reverse("admin:subscriptions_subscriber_send_test", args=[subscriber.pk])),
        ("post", reverse("admin:subscriptions_subscriber_send_test", args=[subscriber.pk])),
        ("get", reverse("admin:papers_importrun_import")),
        ("post", reverse("admin:papers_importrun_import")),
        ("post", reverse("admin:papers_importrun_import_feeds")),
    ]


def test_staff_without_permissions_reach_no_custom_view(client, django_user_model, sent_digest):
    client.force_login(staff(django_user_model))

    for method, url in custom_views(sent_digest):
        response = getattr(client, method)(url)
        assert response.status_code in (302, 403), (method, url, response.status_code)
        if response.status_code == 302:
            assert not response.url.startswith(url.split("?")[0]), (method, url)
        assert b"reader@example.org" not in response.content
        assert b"/unsubscribe/" not in response.content


def test_the_digest_as_sent_is_for_those_who_may_see_digests(
    client, django_user_model, sent_digest
):
    client.force_login(staff(django_user_model, "digest.view_digest"))

    response = client.get(reverse("admin:digest_digest_email", args=[sent_digest.pk]))

    assert response.status_code == 200


def test_the_dashboard_shows_figures_only_to_those_who_may_see_them(client, django_user_model):
    SubscriberFactory()
    client.force_login(staff(django_user_model, "papers.view_paper"))
    assert b"paperboy-dashboard" not in client.get(reverse("admin:index")).content

    client.force_login(
        staff(django_user_model, "digest.view_digest", "subscriptions.view_subscriber")
    )
    assert b"paperboy-dashboard" in client.get(reverse("admin:index")).content


ACTIONS = [
    (Paper, "feature", PaperFactory),
    (Paper, "unfeature", lambda: PaperFactory(featured=True)),
    (Paper, "hide", PaperFactory),
    (Paper, "unhide", lambda: PaperFactory(hidden=True)),
    (Paper, "rescore", PaperFactory),
    (Topic, "promote", lambda: Topic.for_interest(f"interest {Topic.objects.count()}")),
    (Topic, "merge", TopicFactory),
    (Subscriber, "export_csv", SubscriberFactory),
]


@pytest.mark.parametrize(("model", "action", "make"), ACTIONS, ids=[a[1] for a in ACTIONS])
def test_view_only_staff_are_offered_no_action_that_changes_data(
    client, django_user_model, model, action, make
):
    meta = model._meta
    client.force_login(staff(django_user_model, f"{meta.app_label}.view_{meta.model_name}"))
    objects = [make(), make()]
    before = list(model.objects.order_by("pk").values())
    changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")

    form = client.get(changelist).context["action_form"]  # None when none is offered
    offered = form.fields["action"].choices if form is not None else []
    response = client.post(
        changelist,
        {"action": action, "_selected_action": [o.pk for o in objects], "post": "yes"},
    )

    names = [name for name, _ in offered]
    if action == "export_csv":
        # Reading is what a view permission is for.
        assert action in names
        assert response["Content-Type"].startswith("text/csv")
        return
    assert action not in names
    assert response.status_code in (200, 302)
    assert list(model.objects.order_by("pk").values()) == before
