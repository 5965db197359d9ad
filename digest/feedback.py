"""A reader's 👍/👎 on a paper of their digest."""

from digest.models import DigestItem, Feedback
from digest.tasks import train_reader


def record_feedback(subscriber, paper, vote: int) -> Feedback:
    """Idempotent: the latest vote on a paper counts, once. The reader's model is
    trained again after commit, by a task."""
    item = DigestItem.objects.filter(subscriber=subscriber, paper=paper).first()
    feedback, _ = Feedback.objects.update_or_create(
        subscriber=subscriber,
        paper=paper,
        defaults={"vote": vote, "topic_ids": item.topic_ids if item else []},
    )
    train_reader.delay_on_commit(subscriber.pk)
    return feedback
