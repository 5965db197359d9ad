import uuid
import zoneinfo
from functools import cache

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

MAX_PAPERS_LIMIT = 50


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError("%(value)s is not an IANA time zone.", params={"value": value})


def normalise_email(address: str) -> str:
    """Lower-case the domain; the local part is the mailbox owner's business."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if local else address.strip()


class EmailQuerySet(models.QuerySet):
    def with_email(self, address: str):
        # LOWER(email), as the unique indexes hold it: iexact compares UPPER() and
        # scans the whole table.
        return self.alias(email_lower=Lower("email")).filter(
            email_lower=normalise_email(address).lower()
        )


class SubscriberQuerySet(EmailQuerySet):
    def active(self):
        return self.filter(status=Subscriber.Status.ACTIVE)

    def due(self, now):
        return self.active().filter(next_due_at__lte=now)


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        SUPPRESSED = "suppressed", "Suppressed (bounced or complained)"

    # Every status change there is, in one place (subscriptions.services,
    # subscriptions.deliverability and the admin keep to it): signing up (again),
    # confirming, pausing and resuming, unsubscribing, a suppression and its lift.
    TRANSITIONS = {
        Status.PENDING: {Status.ACTIVE, Status.UNSUBSCRIBED, Status.SUPPRESSED},
        Status.ACTIVE: {Status.PAUSED, Status.UNSUBSCRIBED, Status.SUPPRESSED},
        Status.PAUSED: {Status.ACTIVE, Status.UNSUBSCRIBED, Status.SUPPRESSED},
        Status.UNSUBSCRIBED: {Status.PENDING, Status.SUPPRESSED},
        # Lifted: back to what it interrupted, an active subscription paused.
        Status.SUPPRESSED: {Status.PENDING, Status.PAUSED, Status.UNSUBSCRIBED},
    }
    # What a lift returns each interrupted status to: nobody is mailed again without
    # doing something themselves.
    AFTER_LIFT = {
        Status.PENDING: Status.PENDING,
        Status.ACTIVE: Status.PAUSED,
        Status.PAUSED: Status.PAUSED,
        Status.UNSUBSCRIBED: Status.UNSUBSCRIBED,
    }

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    class Weekday(models.IntegerChoices):
        MONDAY = 0
        TUESDAY = 1
        WEDNESDAY = 2
        THURSDAY = 3
        FRIDAY = 4
        SATURDAY = 5
        SUNDAY = 6

    email = models.EmailField(max_length=254)
    key = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="The secret behind this subscriber's signed links. Never shown.",
    )
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    # Interests typed before the address is confirmed: they become shared topics (and
    # are scored) only at confirmation, so an unconfirmed sign-up creates nothing that
    # every later import has to score against.
    pending_interests = models.JSONField(default=list, blank=True)
    # What a suppression interrupted, for lifting it (subscriptions.deliverability.lift).
    status_before_suppression = models.CharField(max_length=16, choices=Status, blank=True)
    topics = models.ManyToManyField("papers.Topic", related_name="subscribers", blank=True)
    frequency = models.CharField(max_length=8, choices=Frequency, default=Frequency.DAILY)
    weekday = models.PositiveSmallIntegerField(
        choices=Weekday, default=Weekday.MONDAY, help_text="The day a weekly digest goes out."
    )
    send_hour = models.PositiveSmallIntegerField(
        default=8,
        validators=[MaxValueValidator(23)],
        help_text="Local hour (0-23) at which the digest goes out.",
    )
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone], help_text="IANA time zone."
    )
    max_papers = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(MAX_PAPERS_LIMIT)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_ip = models.GenericIPAddressField(null=True, blank=True)
    consent_user_agent = models.CharField(max_length=500, blank=True)
    next_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next digest is due (UTC)."
    )

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_unique_email_ci"),
            # Only a confirmed address may ever receive a digest.
            models.CheckConstraint(
                condition=~Q(status="active") | Q(confirmed_at__isnull=False),
                name="subscriber_active_is_confirmed",
            ),
            models.CheckConstraint(
                condition=Q(send_hour__lte=23), name="subscriber_send_hour_range"
            ),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="subscriber_weekday_range"),
            models.CheckConstraint(
                condition=Q(max_papers__gte=1, max_papers__lte=MAX_PAPERS_LIMIT),
                name="subscriber_max_papers_range",
            ),
        ]
        indexes = [
            # Serves Subscriber.objects.due(now), the scheduling pass's only scan.
            models.Index(
                fields=["next_due_at"], condition=Q(status="active"), name="subscriber_due_idx"
            ),
        ]

    def __str__(self):
        return self.email

    def save(self, *args, **kwargs):
        self.email = normalise_email(self.email)
        super().save(*args, **kwargs)

    @classmethod
    def can_move(cls, old: str, new: str) -> bool:
        return new == old or new in cls.TRANSITIONS[old]

    @property
    def zoneinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class SuppressionQuerySet(EmailQuerySet):
    def active(self):
        return self.filter(lifted_at__isnull=True)


class Suppression(models.Model):
    """An address Paperboy must not mail: checked at send time, for every subscription."""

    class Reason(models.TextChoices):
        BOUNCED = "bounced", "Hard bounce"
        SOFT_BOUNCES = "soft_bounces", "Repeated soft bounces"
        REJECTED = "rejected", "Rejected by the ESP"
        COMPLAINED = "complained", "Spam complaint"
        REFUSED = "refused", "Refused by the receiving server"
        MANUAL = "manual", "Suppressed by an admin"

    email = models.EmailField(max_length=254)
    reason = models.CharField(max_length=16, choices=Reason)
    source_event = models.ForeignKey(
        "subscriptions.DeliveryEvent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="suppressions",
    )
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_reason = models.CharField(max_length=500, blank=True)

    objects = SuppressionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One standing suppression per address; lifted ones stay as history.
            models.UniqueConstraint(
                Lower("email"), condition=Q(lifted_at__isnull=True), name="suppression_one_active"
            ),
        ]

    def __str__(self):
        return f"{self.email} ({self.get_reason_display()})"


class DeliveryEvent(models.Model):
    """A tracking event from the ESP's webhook, stored before it is acted on."""

    esp = models.CharField(max_length=32)
    event_id = models.CharField(
        max_length=255, unique=True, help_text="The ESP's id, or a hash of the event."
    )
    event_type = models.CharField(max_length=32)
    recipient = models.EmailField(max_length=254, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    reject_reason = models.CharField(max_length=32, blank=True)
    description = models.TextField(blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        indexes = [
            # Soft bounces per address in a window, and the complaint-rate figure.
            models.Index(fields=["event_type", "received_at"], name="deliveryevent_type_idx"),
            # A digest's events, on its page in the delivery log.
            models.Index(fields=["message_id"], name="deliveryevent_message_idx"),
            # Events still to act on (the receiver enqueues; a sweep catches leftovers).
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="deliveryevent_pending_idx",
            ),
        ]

    def __str__(self):
        return f"{self.esp} {self.event_type} {self.recipient}"
