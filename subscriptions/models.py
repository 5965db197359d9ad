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


class SubscriberQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=Subscriber.Status.ACTIVE)

    def due(self, now):
        return self.active().filter(next_due_at__lte=now)

    def with_email(self, address: str):
        return self.filter(email__iexact=normalise_email(address))


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        SUPPRESSED = "suppressed", "Suppressed (bounced or complained)"

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
    topics = models.ManyToManyField("digest.Topic", related_name="subscribers", blank=True)
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

    @property
    def zoneinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)
