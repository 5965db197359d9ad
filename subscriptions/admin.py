import csv
from collections import defaultdict

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation, IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import OuterRef, Prefetch
from django.db.models.functions import Lower
from django.http import (
    StreamingHttpResponse,
)
from django.utils import timezone
from django.utils.html import format_html

from core.admin import Echo, confirm_action, keyset_pages, spreadsheet_safe
from papers import admin as papers_admin
from papers.models import Topic
from subscriptions import deliverability, services, tasks
from subscriptions.models import DeliveryEvent, Subscriber, Suppression

EXPORT_COLUMNS = [
    "email",
    "status",
    "frequency",
    "weekday",
    "send_hour",
    "timezone",
    "max_papers",
    "topics",
    "created_at",
    "confirmed_at",
]
TOPICS_SHOWN = 5


def export_lines(queryset):
    """The subscribers as CSV lines, two queries per page of PAGE subscribers."""
    writer = csv.writer(Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    weekdays = dict(Subscriber.Weekday.choices)
    fields = [name for name in EXPORT_COLUMNS if name != "topics"]
    for page in keyset_pages(queryset, *fields):
        topics = defaultdict(list)
        memberships = (
            Subscriber.topics.through.objects.filter(subscriber_id__in=[row[0] for row in page])
            .order_by("topic__name")
            .values_list("subscriber_id", "topic__name")
        )
        for subscriber_id, name in memberships:
            topics[subscriber_id].append(name)
        lines = []
        for pk, *values in page:
            row = dict(zip(fields, values, strict=True))
            row["weekday"] = weekdays[row["weekday"]]
            row["topics"] = "; ".join(topics[pk])
            lines.append(writer.writerow([spreadsheet_safe(row[name]) for name in EXPORT_COLUMNS]))
        yield "".join(lines)


class TopicFilter(admin.SimpleListFilter):
    """Curated topics only: listing every interest (thousands) would be an unbounded
    select. Any topic id still filters, as the topic list's links to here rely on."""

    title = "topic"
    parameter_name = "topics__id__exact"

    def lookups(self, request, model_admin):
        choices = list(Topic.objects.curated().order_by("name").values_list("pk", "name"))
        value = self.value()
        if value and value.isdigit() and int(value) not in {pk for pk, _ in choices}:
            choices += Topic.objects.filter(pk=value).values_list("pk", "name")
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters(f"not a topic id: {value!r}")
        # One membership per subscriber and topic, so the join cannot duplicate rows.
        return queryset.filter(topics__id=value)


class SubscriberChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # The page's topics in one query, not one per row.
        self.result_list = self.result_list.prefetch_related(
            Prefetch("topics", queryset=Topic.objects.only("name"))
        )


class SubscriberForm(forms.ModelForm):
    class Meta:
        model = Subscriber
        fields = ["email", "status", *services.PREFERENCE_FIELDS, "topics"]

    def clean_status(self):
        status = self.cleaned_data["status"]
        current = self.instance.status
        if status == current:
            return status
        if not Subscriber.can_move(current, status):
            raise forms.ValidationError(
                f"A subscriber who is {Subscriber.Status(current).label.lower()} cannot "
                f"become {Subscriber.Status(status).label.lower()}."
            )
        if status == Subscriber.Status.PENDING:
            raise forms.ValidationError(
                "A subscriber becomes pending by signing up again: the confirmation email "
                "goes with it."
            )
        if status == Subscriber.Status.SUPPRESSED:
            raise forms.ValidationError(
                "Use the “Suppress” action: it puts the address on the suppression list too."
            )
        if current == Subscriber.Status.SUPPRESSED:
            raise forms.ValidationError(
                "Lift the suppression (Suppressions, “Lift”): the subscriber then comes "
                "back to what it interrupted."
            )
        if status == Subscriber.Status.ACTIVE and self.instance.confirmed_at is None:
            raise forms.ValidationError(
                "Only a subscriber who confirmed their address can be active: "
                "resend the confirmation instead."
            )
        return status


class SuppressForm(forms.Form):
    detail = forms.CharField(
        label="Why (kept with the record)",
        max_length=500,
        error_messages={"required": "Give a reason."},
    )


class LiftForm(forms.Form):
    reason = forms.CharField(
        label="Reason (kept with the record)",
        max_length=500,
        error_messages={"required": "Give a reason."},
    )


LIFT_EXPLANATION = (
    "Mail to these addresses was stopped because it bounced, was refused or drew a "
    "complaint. Their subscribers come back paused: they resume from their manage page."
)


def lift_suppressions(suppressions, reason: str) -> int:
    lifted = 0
    for page in keyset_pages(suppressions.active()):
        for suppression in page:
            deliverability.lift(suppression, reason)
            lifted += 1
    return lifted


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    form = SubscriberForm
    list_display = [
        "email",
        "status",
        "frequency",
        "send_hour",
        "timezone",
        "next_due_at",
        "topic_names",
        "created_at",
    ]
    list_filter = ["status", TopicFilter, "frequency", "timezone"]
    search_fields = ["email"]
    # The unfiltered total is a second COUNT over every subscriber on each page view.
    show_full_result_count = False
    autocomplete_fields = ["topics"]
    readonly_fields = [
        "next_due_at",
        "created_at",
        "updated_at",
        "confirmed_at",
        "consent_at",
        "consent_ip",
        "consent_user_agent",
    ]
    fieldsets = [
        (None, {"fields": ["email", "status"]}),
        (
            "Schedule",
            {
                "fields": [
                    "frequency",
                    "weekday",
                    "send_hour",
                    "timezone",
                    "max_papers",
                    "next_due_at",
                ]
            },
        ),
        ("Topics", {"fields": ["topics"]}),
        (
            "Consent",
            {
                "fields": [
                    "created_at",
                    "updated_at",
                    "confirmed_at",
                    "consent_at",
                    "consent_ip",
                    "consent_user_agent",
                ]
            },
        ),
    ]
    actions = ["resend_confirmation", "suppress", "lift_suppression", "export_csv"]

    def get_changelist(self, request, **kwargs):
        return SubscriberChangeList

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        # Its confirmation page loads every selected subscriber with their digests and
        # ledger: with "select all", that is the whole table. One at a time, from the
        # subscriber's page, stays.
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="Topics")
    def topic_names(self, subscriber):
        names = [topic.name for topic in subscriber.topics.all()]
        shown = ", ".join(names[:TOPICS_SHOWN])
        more = len(names) - TOPICS_SHOWN
        return f"{shown} (+{more})" if more > 0 else shown

    def save_model(self, request, obj, form, change):
        rescheduled = not change or any(
            name in form.changed_data for name in [*services.SCHEDULE_FIELDS, "status"]
        )
        if rescheduled:
            services.reschedule(obj)
        if not change:
            obj.save()
            return
        # Only what the curator changed: an unsubscribe or a bounce that lands while the
        # form is open must stand.
        fields = [name for name in form.changed_data if name != "topics"]
        if rescheduled:
            fields.append("next_due_at")
        if fields:
            obj.save(update_fields=[*fields, "updated_at"])

    @admin.action(description="Resend the confirmation email…", permissions=["change"])
    def resend_confirmation(self, request, queryset):
        pending = queryset.filter(status=Subscriber.Status.PENDING)

        def apply(pending):
            queued = 0
            for page in keyset_pages(pending):
                for subscriber in page:
                    tasks.send_confirmation.delay_on_commit(subscriber.pk)
                    queued += 1
            return f"Queued the confirmation email for {queued} pending subscriber(s)."

        return confirm_action(
            self,
            request,
            pending,
            action="resend_confirmation",
            title="Resend the confirmation email",
            explanation="Only subscribers still waiting to confirm are mailed; the others "
            "in the selection are left alone, and so are suppressed addresses.",
            apply=apply,
            button="Send",
        )

    @admin.action(description="Suppress the selected addresses…", permissions=["change"])
    def suppress(self, request, queryset):
        def apply(queryset, cleaned):
            suppressed = already = 0
            for page in keyset_pages(queryset, "email"):
                for _, email in page:
                    if deliverability.suppress(
                        email, Suppression.Reason.MANUAL, detail=cleaned["detail"]
                    ):
                        suppressed += 1
                    else:
                        already += 1
            return f"Suppressed {suppressed} address(es); {already} already were."

        return confirm_action(
            self,
            request,
            queryset,
            action="suppress",
            title="Suppress these addresses",
            explanation="Nothing more is mailed to them, digests or otherwise, until the "
            "suppression is lifted.",
            apply=apply,
            form_class=SuppressForm,
            button="Suppress",
        )

    @admin.action(
        description="Lift the suppression of the selected addresses…", permissions=["change"]
    )
    def lift_suppression(self, request, queryset):
        suppressed = queryset.filter(status=Subscriber.Status.SUPPRESSED)

        def apply(suppressed, cleaned):
            lifted = 0
            for page in keyset_pages(suppressed, "email"):
                emails = {email.lower() for _, email in page}
                suppressions = Suppression.objects.annotate(lower_email=Lower("email")).filter(
                    lower_email__in=emails
                )
                lifted += lift_suppressions(suppressions, cleaned["reason"])
            return f"Lifted {lifted} suppression(s)."

        return confirm_action(
            self,
            request,
            suppressed,
            action="lift_suppression",
            title="Lift the suppression of these addresses",
            explanation=LIFT_EXPLANATION,
            apply=apply,
            form_class=LiftForm,
            button="Lift",
        )

    @admin.action(description="Export the selected subscribers as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = StreamingHttpResponse(
            export_lines(queryset), content_type="text/csv; charset=utf-8"
        )
        name = f"subscribers-{timezone.now():%Y%m%d-%H%M}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email", "reason", "created_at", "lifted_at", "lifted_reason", "source_event"]
    list_filter = ["reason", ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["email", "detail", "lifted_reason"]
    list_select_related = ["source_event"]
    raw_id_fields = ["source_event"]
    readonly_fields = ["created_at", "lifted_at", "lifted_reason", "source_event"]
    actions = ["lift"]

    def get_readonly_fields(self, request, obj=None):
        # A suppression is added (which suppresses the address) or lifted (which gives
        # the subscriber back what it interrupted); edited by hand it would do neither.
        if obj is not None:
            return ["email", "reason", "detail", *self.readonly_fields]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # Deleting would un-suppress the address without a lift: lift it instead, and
        # the record stays, with who lifted it and why.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # Adding one by hand suppresses the address everywhere, like a bounce would.
        deliverability.suppress(
            obj.email, obj.reason or Suppression.Reason.MANUAL, detail=obj.detail
        )
        obj.pk = (
            Suppression.objects.active().with_email(obj.email).values_list("pk", flat=True).first()
        )

    @admin.action(description="Lift the selected suppressions…", permissions=["change"])
    def lift(self, request, queryset):
        return confirm_action(
            self,
            request,
            queryset.active(),
            action="lift",
            title="Lift these suppressions",
            explanation=LIFT_EXPLANATION,
            apply=lambda active, cleaned: (
                f"Lifted {lift_suppressions(active, cleaned['reason'])} suppression(s)."
            ),
            form_class=LiftForm,
            button="Lift",
        )


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "esp",
        "event_type",
        "recipient",
        "reject_reason",
        "processed_at",
    ]
    list_filter = ["event_type", "esp", ("processed_at", admin.EmptyFieldListFilter)]
    search_fields = ["recipient", "message_id", "event_id"]
    date_hierarchy = "received_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        rate, complaints, delivered = deliverability.complaint_rate()
        if rate is not None and rate > settings.PAPERBOY_COMPLAINT_RATE_WARNING:
            self.message_user(
                request,
                f"Complaint rate over the last 7 days is {rate:.2%} ({complaints} complaints, "
                f"{delivered} delivered), above {settings.PAPERBOY_COMPLAINT_RATE_WARNING:.1%}: "
                "mailbox providers start to send this mail to spam.",
                messages.WARNING,
            )
        summary = (
            f"{rate:.3%} ({complaints} / {delivered} delivered)"
            if rate is not None
            else "no deliveries"
        )
        extra_context = {
            **(extra_context or {}),
            "title": f"Delivery events · complaint rate, 7 days: {summary}",
        }
        return super().changelist_view(request, extra_context)


admin.site.unregister(Topic)


@admin.register(Topic)
class TopicAdmin(papers_admin.TopicAdmin):
    """Papers' topic admin, with how many subscribers follow each topic."""

    list_display = ["name", "kind", "subscriber_count", "recent_match_count", "created_at"]

    def followers(self):
        return papers_admin.count_of(
            Subscriber.topics.through.objects.filter(topic_id=OuterRef("pk"))
        )

    @admin.display(description="subscribers", ordering="subscriber_count")
    def subscriber_count(self, topic):
        url = papers_admin.changelist_url(Subscriber, topics__id__exact=topic.pk)
        return format_html('<a href="{}">{}</a>', url, topic.subscriber_count)
