"""The product's hard promises, held by the database itself."""

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction

from digest.models import Digest, DigestItem
from papers.importers import import_source
from papers.models import Paper, Topic
from subscriptions.models import Subscriber, Suppression
from tests.support.factories import DigestFactory, PaperFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

ATOM = """<feed xmlns="http://www.w3.org/2005/Atom"><entry>
<id>http://arxiv.org/abs/2401.04088v{version}</id><title>Mixtral of Experts</title>
<summary>Version {version}.</summary></entry></feed>"""


def test_a_second_digest_for_the_same_period_fails_at_the_database():
    digest = DigestFactory(period="2026-W48")

    with (
        pytest.raises(IntegrityError, match=r"digest_one_per_subscriber_period|UNIQUE constraint"),
        transaction.atomic(),
    ):
        Digest.objects.create(
            subscriber=digest.subscriber, period="2026-W48", scheduled_for=digest.scheduled_for
        )
    # Another period, or another subscriber in the same period, is fine.
    Digest.objects.create(
        subscriber=digest.subscriber, period="2026-W49", scheduled_for=digest.scheduled_for
    )
    DigestFactory(period="2026-W48")
    assert Digest.objects.count() == 3


def test_a_paper_cannot_enter_a_subscribers_ledger_twice_in_any_version(tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(ATOM.format(version=1))
    import_source(str(feed))
    first = DigestFactory(period="2026-11-27")
    DigestItem.objects.create(digest=first, paper=Paper.objects.get(), position=1)

    feed.write_text(ATOM.format(version=2))
    import_source(str(feed))
    paper = Paper.objects.get()
    assert paper.arxiv_version == 2
    later = DigestFactory(subscriber=first.subscriber, period="2026-11-28")

    with (
        pytest.raises(IntegrityError, match=r"ledger_paper_once_per_subscriber|UNIQUE constraint"),
        transaction.atomic(),
    ):
        DigestItem.objects.create(digest=later, paper=paper, position=1)
    # Another subscriber may get the same paper.
    DigestItem.objects.create(digest=DigestFactory(period="2026-11-28"), paper=paper, position=1)


def test_the_ledger_records_the_digests_subscriber():
    digest = DigestFactory()
    item = DigestItem.objects.create(digest=digest, paper=PaperFactory(), position=1)
    assert item.subscriber == digest.subscriber


def test_an_arxiv_id_is_unique():
    PaperFactory(arxiv_id="2401.04088")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaperFactory(arxiv_id="2401.04088", title="Another title")


def test_papers_without_an_arxiv_id_are_unique_by_normalised_title():
    PaperFactory(arxiv_id=None, title="Mixtral of Experts")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaperFactory(arxiv_id=None, title="  mixtral OF experts! ")
    # Papers with ids may share a title (the id decides).
    PaperFactory(arxiv_id="2401.04088", title="Mixtral of Experts")


def test_email_addresses_are_unique_ignoring_case():
    SubscriberFactory(email="Ada@Example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        SubscriberFactory(email="ada@example.ORG")
    with pytest.raises(IntegrityError), transaction.atomic():
        SubscriberFactory(email="ADA@example.org")


def test_the_domain_of_an_address_is_lower_cased():
    subscriber = SubscriberFactory(email="Ada.Lovelace@Example.ORG")
    assert subscriber.email == "Ada.Lovelace@example.org"
    assert Subscriber.objects.with_email("ada.lovelace@EXAMPLE.org").get() == subscriber


def test_an_unconfirmed_subscriber_can_never_be_active():
    with (
        pytest.raises(IntegrityError, match=r"subscriber_active_is_confirmed|CHECK constraint"),
        transaction.atomic(),
    ):
        SubscriberFactory(status=Subscriber.Status.ACTIVE, confirmed_at=None)
    SubscriberFactory(status=Subscriber.Status.PENDING, confirmed_at=None)


@pytest.mark.parametrize(
    ("field", "value"), [("send_hour", 24), ("weekday", 7), ("max_papers", 0), ("max_papers", 51)]
)
def test_schedule_fields_are_bounded(field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        SubscriberFactory(**{field: value})


def test_due_finds_active_subscribers_whose_time_has_come():
    from django.utils import timezone

    now = timezone.now()
    due = SubscriberFactory(next_due_at=now)
    SubscriberFactory(next_due_at=now + timezone.timedelta(minutes=1))
    SubscriberFactory(next_due_at=now, status=Subscriber.Status.PAUSED)
    SubscriberFactory(next_due_at=None)

    assert list(Subscriber.objects.due(now)) == [due]


def test_everyone_who_types_the_same_interest_shares_one_topic():
    first = Topic.for_interest("Diffusion models for proteins")
    second = Topic.for_interest("  diffusion MODELS for proteins! ")

    assert first == second
    assert first.kind == Topic.Kind.INTEREST
    assert first.term_list == ["Diffusion models for proteins"]
    assert Topic.objects.interests().count() == 1


def test_an_interest_that_names_a_curated_topic_joins_it():
    curated = Topic.objects.get(slug="diffusion-models")
    assert Topic.for_interest("diffusion models") == curated


def test_interest_slugs_never_collide():
    a = Topic.for_interest("C++")
    b = Topic.for_interest("C")
    assert a != b and a.slug != b.slug


def test_an_interest_needs_a_letter_or_digit():
    with pytest.raises(ValueError, match="at least one letter or digit"):
        Topic.for_interest(" !!! ")


def test_the_starter_topics_are_loaded():
    curated = Topic.objects.curated()
    assert 15 <= curated.count() <= 25
    names = set(curated.values_list("name", flat=True))
    assert {
        "Reinforcement learning",
        "Continual learning",
        "In-context learning",
        "Diffusion models",
        "LLM agents",
    } <= names
    assert all(topic.term_list for topic in curated)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN's plans are PostgreSQL's")
def test_looking_an_address_up_uses_the_unique_index_not_a_table_scan():
    """Every sign-up, webhook and send-time suppression check looks an address up. A
    case-insensitive match that is not the indexed LOWER(email) scans the whole table:
    7 ms a sign-up at 21,000 subscribers, growing with the list."""
    SubscriberFactory(email="Ada@Example.org")
    Suppression.objects.create(email="Bob@Example.org", reason=Suppression.Reason.BOUNCED)
    queries = [
        Subscriber.objects.with_email("ADA@example.ORG"),
        Suppression.objects.active().with_email("bob@EXAMPLE.org"),
    ]

    with connection.cursor() as cursor:
        # A penalty, not a ban: with no usable index the plan still scans the table.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plans = [query.explain() for query in queries]

    assert [query.count() for query in queries] == [1, 1]
    for plan in plans:
        assert "Seq Scan" not in plan, plan


def test_no_index_is_a_prefix_of_another():
    """Each index costs a write at every insert and at every update that moves the row:
    a digest is written three times and brings about eight ledger rows. An index whose
    columns start another index (a foreign key's, under a unique constraint) only costs."""
    # Not the many-to-many tables Django creates itself: their indexes are its own.
    tables = [
        model._meta.db_table
        for label in ("papers", "subscriptions", "digest")
        for model in apps.get_app_config(label).get_models()
    ]
    redundant = []
    with connection.cursor() as cursor:
        for table in tables:
            constraints = connection.introspection.get_constraints(cursor, table)
            # Unique constraints are indexes too, reported apart on PostgreSQL.
            indexes = {
                name: tuple(info["columns"])
                for name, info in constraints.items()
                if (info["index"] or info["unique"])
                and not info["primary_key"]
                and all(info["columns"])
            }
            unique = {name for name, info in constraints.items() if info["unique"]}
            for name, columns in indexes.items():
                for other, longer in indexes.items():
                    if (
                        other != name
                        and name not in unique
                        and len(longer) > len(columns)
                        and longer[: len(columns)] == columns
                    ):
                        redundant.append(f"{table}.{name} {columns} under {other} {longer}")

    assert redundant == []
