from django.contrib import admin

from subscriptions.models import Subscriber


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
