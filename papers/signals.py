"""Rescoring recent papers when a topic is created or its terms change; and the
signal other apps receive when topics merge."""

from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal

from papers.matching import rescore_topic
from papers.models import Topic
from papers.semantic import phrases_of
from papers.tasks import rescore_topic_later

# Sent by papers.topics.merge_topics inside its transaction, with ``survivor`` and
# ``merged_ids`` (the topics about to be deleted): whatever refers to those moves to the
# survivor. A receiver returns counts for papers.topics.MergeResult ({field: count}).
topics_merging = Signal()

# Set by defer_rescoring(): new topics are scored by a Celery task after commit.
_deferred: ContextVar[bool] = ContextVar("paperboy_defer_rescoring", default=False)


@contextmanager
def defer_rescoring():
    """Topics created inside are scored against recent papers by a task after commit,
    not in the caller's request.

    For sign-ups: rescoring a month of papers takes about 0.4 ms a paper, which in a
    request holds a web worker for a quarter of a second or more per new interest. A
    curator editing a topic in the admin still sees the new matches at once.
    """
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def connect() -> None:
    """Called from PapersConfig.ready()."""
    pre_save.connect(note_term_change, sender=Topic, dispatch_uid="papers.note_term_change")
    post_save.connect(rescore_after_save, sender=Topic, dispatch_uid="papers.rescore_after_save")


def note_term_change(sender, instance: Topic, raw: bool, update_fields=None, **kwargs) -> None:
    """Tell rescore_after_save whether this save changes the topic's terms, or the
    phrases it is embedded as (a curated topic's name is one).

    One primary-key read per save of an existing topic, so editing its description, or
    renaming an interest, does not rescore a month of papers.
    """
    if raw:
        return
    if update_fields is not None and not {"terms", "name", "kind"} & set(update_fields):
        instance._terms_changed = False
    elif instance._state.adding or instance.pk is None:
        instance._terms_changed = True
    else:
        before = sender.objects.filter(pk=instance.pk).only("name", "kind", "terms").first()
        # A curated topic's name is one of the phrases it is embedded as, when meaning
        # counts; words alone never look at it.
        by_meaning = settings.PAPERBOY_MATCHING != "lexical"
        instance._terms_changed = (
            before is None
            or before.term_list != instance.term_list
            or (by_meaning and phrases_of(before) != phrases_of(instance))
        )


def rescore_after_save(sender, instance: Topic, created: bool, raw: bool, **kwargs) -> None:
    """A new topic, or one whose terms changed, is scored against recent papers."""
    # A fixture (a raw save) brings its topics' stored scores along, or none at all.
    if raw:
        return
    if created and _deferred.get():
        transaction.on_commit(lambda: rescore_topic_later.delay(instance.pk))
    elif created or getattr(instance, "_terms_changed", True):
        rescore_topic(instance)
    instance._terms_changed = False
