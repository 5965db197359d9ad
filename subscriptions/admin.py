from django.conf import settings
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from subscriptions import deliverability
from subscriptions.models import DeliveryEvent, Subscriber, Suppression


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "status",
        "frequency",
        "send_hour",
        "timezone",
        "next_due_at",
        "created_at",
    ]
    list_filter = ["status", "frequency", "timezone", "topics"]
    search_fields = ["email"]
    autocomplete_fields = ["topics"]
    readonly_fields = [
        "created_at",
        "updated_at",
        "confirmed_at",
        "consent_at",
        "consent_ip",
        "consent_user_agent",
    ]
    date_hierarchy = "created_at"


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email", "reason", "created_at", "lifted_at", "lifted_reason", "source_event"]
    list_filter = ["reason", ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["email", "detail", "lifted_reason"]
    list_select_related = ["source_event"]
    raw_id_fields = ["source_event"]
    readonly_fields = ["created_at", "lifted_at", "lifted_reason", "source_event"]
    actions = ["lift"]

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

    @admin.action(description="Lift the selected suppressions…")
    def lift(self, request, queryset):
        queryset = queryset.active()
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("confirmed") and reason:
            for suppression in queryset:
                deliverability.lift(suppression, reason)
            self.message_user(request, f"Lifted {len(queryset)} suppression(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "queryset": queryset,
            "error": "Give a reason." if request.POST.get("confirmed") else "",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/subscriptions/lift_suppressions.html", context)


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
