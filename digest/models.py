from django.db import models
from django.db.models import Q

from papers.models import Paper


class Digest(models.Model):
    class Status(models.TextChoices):
        CLAIMED = "claimed", "Claimed"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        # Handed to the mail server, which never confirmed it: it may have been delivered,
        # so it is not sent again (see digest.ledger).
        UNKNOWN = "unknown", "Unknown (no reply from the mail server)"
        SKIPPED = "skipped", "Skipped (nothing new)"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Suppressed"

    # No index of its own: digest_one_per_subscriber_period starts with it. Every index
    # costs an insertion at each of a digest's three writes (claimed, sending, sent).
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber", on_delete=models.CASCADE, related_name="digests", db_index=False
    )
    period = models.CharField(
        max_length=16,
        help_text="The subscriber's local day (2026-11-28) or ISO week (2026-W48) "
        "this digest covers.",
    )
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status, default=Status.CLAIMED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Until when the task that has this digest answers for it; a claimed digest whose
    # lease ran out was lost with its task and is queued again (digest.scheduling.sweep).
    leased_until = models.DateTimeField(null=True, blank=True)
    # The sending run that holds it now (its task's id; "" while it waits in the queue):
    # every change after the claim is conditional on it and on the status, so a run
    # that lost the digest (its lease ran out and another task took it) changes nothing
    # of it, whatever its mail server answers.
    owner = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # What the ESP reports back through its webhook, where it does.
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-scheduled_for", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "period"], name="digest_one_per_subscriber_period"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-scheduled_for"], name="digest_status_idx"),
            # The delivery log (newest first, by date) and the dashboard's "today".
            models.Index(fields=["-scheduled_for"], name="digest_scheduled_idx"),
            # The dashboard's chart of digests sent per day.
            models.Index(
                fields=["sent_at"], condition=Q(sent_at__isnull=False), name="digest_sent_idx"
            ),
            # The scheduling pass looks for digests whose task was lost.
            models.Index(
                fields=["leased_until"],
                condition=Q(status__in=["claimed", "sending"]),
                name="digest_lease_idx",
            ),
            # ESP events find their digest by message id.
            models.Index(fields=["message_id"], name="digest_message_id_idx"),
        ]

    def __str__(self):
        return f"{self.subscriber} · {self.period}"


class DigestItem(models.Model):
    """A paper in a digest, and the ledger of what each subscriber was sent.

    The subscriber is repeated from the digest so that "never the same paper
    twice" is a unique constraint. A paper row stands for every arXiv version.
    """

    # Neither has an index of its own: the two unique constraints below start with them,
    # and a digest writes about eight of these rows.
    digest = models.ForeignKey(
        Digest, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber", on_delete=models.CASCADE, related_name="ledger", db_index=False
    )
    paper = models.ForeignKey(Paper, on_delete=models.PROTECT, related_name="digest_items")
    position = models.PositiveSmallIntegerField()
    score = models.FloatField(default=0)
    reason = models.CharField(max_length=500, blank=True)
    topic_ids = models.JSONField(
        default=list, blank=True, help_text="The subscriber's topics this paper matched."
    )

    class Meta:
        ordering = ["digest", "position"]
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger"
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "paper"], name="ledger_paper_once_per_subscriber"
            ),
            models.UniqueConstraint(fields=["digest", "position"], name="digest_item_position"),
        ]

    def __str__(self):
        return f"{self.digest} #{self.position}: {self.paper}"

    def save(self, *args, **kwargs):
        if self.subscriber_id is None:
            self.subscriber_id = self.digest.subscriber_id
        super().save(*args, **kwargs)


class Feedback(models.Model):
    """A subscriber's 👍 or 👎 on a paper from a digest; it tilts their later digests
    towards or away from the topics the paper matched."""

    class Vote(models.IntegerChoices):
        UP = 1, "👍"
        DOWN = -1, "👎"

    # Indexed by feedback_once_per_paper, which starts with it.
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber",
        on_delete=models.CASCADE,
        related_name="feedback",
        db_index=False,
    )
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="feedback")
    vote = models.SmallIntegerField(choices=Vote)
    topic_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "paper"], name="feedback_once_per_paper"),
            models.CheckConstraint(
                condition=Q(vote__in=[1, -1]), name="feedback_vote_is_up_or_down"
            ),
        ]

    def __str__(self):
        return f"{self.subscriber} {self.get_vote_display()} {self.paper}"


class SchedulingPass(models.Model):
    """One run of the scheduling pass, kept for the dashboard (for PASS_HISTORY)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    claimed = models.PositiveIntegerField(default=0, help_text="Due periods claimed.")
    requeued = models.PositiveIntegerField(
        default=0, help_text="Claims no task had picked up, queued again."
    )
    error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "scheduling passes"
        ordering = ["-started_at", "-pk"]
        indexes = [
            # The dashboard's "last pass" and the pruning of old passes.
            models.Index(fields=["-started_at"], name="schedulingpass_started_idx"),
        ]

    def __str__(self):
        return f"pass at {self.started_at:%Y-%m-%d %H:%M}"


class ReaderModel(models.Model):
    """What one reader's 👍 and 👎 taught: a logistic regression on paper embeddings
    (digest.readers), trained in a task after each vote and used to rerank."""

    subscriber = models.OneToOneField(
        "subscriptions.Subscriber",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="reader_model",
    )
    model = models.CharField(max_length=100, help_text="The embedding model it was trained on.")
    weights = models.BinaryField()
    bias = models.FloatField()
    liked = models.JSONField(default=list, help_text="Papers the reader liked, newest first.")
    votes = models.PositiveIntegerField(default=0)
    trained_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"reader model of {self.subscriber_id} ({self.votes} votes)"


class SendingSecond(models.Model):
    """Messages sent in one second of the clock, by every process: the cap on messages
    per second (PAPERBOY_SEND_RATE) where there is no Redis (digest.pacing)."""

    second = models.BigIntegerField(primary_key=True)  # seconds since the epoch
    sent = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.sent} at {self.second}"
