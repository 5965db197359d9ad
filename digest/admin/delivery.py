"""The delivery side of the admin: the digest log, the ledger, imports, schedules."""

import logging

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django_celery_beat.admin import PeriodicTaskAdmin as BasePeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from digest import emails, importers, tasks
from digest.models import Digest, DigestItem, ImportRun, SchedulingPass
from subscriptions.models import DeliveryEvent

logger = logging.getLogger(__name__)


class DigestItemInline(admin.TabularInline):
    model = DigestItem
    fields = ["position", "paper", "score", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("paper")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    """The delivery log. Read-only: its rows are what the ledger and the exactly-once
    promise rest on, so nobody edits them by hand."""

    list_display = [
        "subscriber",
        "period",
        "status",
        "attempts",
        "error",
        "message_id",
        "esp_events",
        "scheduled_for",
        "sent_at",
    ]
    list_filter = [
        "status",
        ("scheduled_for", admin.DateFieldListFilter),
        ("sent_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["subscriber"]
    search_fields = ["subscriber__email", "=message_id"]
    date_hierarchy = "scheduled_for"
    readonly_fields = ["rendered", "delivery_events"]
    inlines = [DigestItemInline]
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting a digest would drop its ledger entries and send those papers again.
        return False

    def get_urls(self):
        view = self.admin_site.admin_view(self.email_view)
        return [
            path("<int:pk>/email/", view, name="digest_digest_email"),
            *super().get_urls(),
        ]

    @admin.display(description="Error")
    def error(self, digest):
        return digest.last_error[:80] + ("…" if len(digest.last_error) > 80 else "")

    @admin.display(description="ESP events")
    def esp_events(self, digest):
        """What the ESP's webhooks reported, from the digest's own columns (no query)."""
        seen = [
            f"{label} {moment:%H:%M}"
            for label, moment in (
                ("delivered", digest.delivered_at),
                ("opened", digest.opened_at),
                ("clicked", digest.clicked_at),
            )
            if moment
        ]
        return ", ".join(seen) or "—"

    @admin.display(description="Email")
    def rendered(self, digest):
        if not digest.items.exists():
            return "Nothing was sent: the digest carried no papers."
        url = reverse("admin:digest_digest_email", args=[digest.pk])
        return format_html(
            '<a href="{}" target="_blank">View the email as sent</a> · '
            '<a href="{}?format=text" target="_blank">plain text</a>',
            url,
            url,
        )

    @admin.display(description="Events from the ESP")
    def delivery_events(self, digest):
        if not digest.message_id:
            return "—"
        events = DeliveryEvent.objects.filter(message_id=digest.message_id).order_by("received_at")[
            :50
        ]
        rows = [
            (
                reverse("admin:subscriptions_deliveryevent_change", args=[event.pk]),
                event.received_at.strftime("%Y-%m-%d %H:%M"),
                event.event_type,
                event.reject_reason or event.description[:120],
            )
            for event in events
        ]
        if not rows:
            return "None received."
        return format_html(
            "<ul>{}</ul>", format_html_join("", '<li><a href="{}">{} {}</a> {}</li>', rows)
        )

    def email_view(self, request, pk):
        """The digest as the subscriber got it, rebuilt from the ledger."""
        # It holds the subscriber's manage and unsubscribe links: control of the
        # subscription, for those who may see digests only.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        digest = get_object_or_404(Digest.objects.select_related("subscriber"), pk=pk)
        rendered = emails.render_sent_digest(digest)
        if rendered is None:
            self.message_user(request, "This digest carried no papers.", messages.WARNING)
            return redirect("admin:digest_digest_change", pk)
        subject, text, html = rendered
        if request.GET.get("format") == "text":
            return HttpResponse(
                f"Subject: {subject}\n\n{text}", content_type="text/plain; charset=utf-8"
            )
        return HttpResponse(html)


@admin.register(DigestItem)
class LedgerAdmin(admin.ModelAdmin):
    """Every paper sent to every subscriber: the ledger behind "never twice"."""

    list_display = ["subscriber", "paper", "digest", "position", "score", "reason"]
    list_select_related = ["subscriber", "paper", "digest__subscriber"]
    search_fields = ["subscriber__email", "paper__title", "=paper__arxiv_id"]
    raw_id_fields = ["digest", "subscriber", "paper"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ImportForm(forms.Form):
    upload = forms.FileField(
        required=False,
        label="File",
        help_text="A saved trending-papers page, HF JSON or arXiv Atom.",
    )
    url = forms.CharField(
        required=False,
        label="or URL",
        max_length=1000,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Fetched now, from this server.",
    )
    format = forms.ChoiceField(
        choices=[("auto", "Detect"), *((name, name) for name in importers.FORMATS)]
    )

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("upload")) == bool(cleaned.get("url")):
            raise ValidationError("Choose a file or give a URL (one of them).")
        return cleaned


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = [
        "finished_at",
        "source",
        "format",
        "status",
        "created",
        "updated",
        "unchanged",
        "rejected",
    ]
    list_filter = ["status", "format", ("finished_at", admin.DateFieldListFilter)]
    search_fields = ["source", "error"]
    change_list_template = "admin/digest/importrun/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="digest_importrun_import",
            ),
            path(
                "import-feeds/",
                self.admin_site.admin_view(self.import_feeds_view),
                name="digest_importrun_import_feeds",
            ),
            *super().get_urls(),
        ]

    def _may_import(self, request) -> bool:
        return request.user.has_perm("digest.add_paper")

    def import_view(self, request):
        """Import a file or URL now, in this request: all or nothing, like the command."""
        if not self._may_import(request):
            return HttpResponse("You may not import papers.", status=403)
        form = ImportForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload, url = form.cleaned_data["upload"], form.cleaned_data["url"]
            limit = settings.PAPERBOY_MAX_IMPORT_BYTES
            try:
                if upload:
                    # One byte over the limit is enough to refuse it.
                    data = upload.read(limit + 1)
                    summary = importers.import_source(
                        f"upload: {upload.name}"[:1000],
                        form.cleaned_data["format"],
                        data=data,
                        embed_later=True,
                    )
                else:
                    summary = importers.import_source(
                        url, form.cleaned_data["format"], embed_later=True
                    )
            except importers.ImportFailed as exc:
                errors = exc.errors[:50]
                form.add_error(None, f"{exc}. Nothing was imported.")
            except Exception:
                # A bug or the database, not the source: one transaction, so nothing
                # was stored; the curator gets a page, the operator the traceback.
                logger.exception("Importing %s failed", url or "an upload")
                form.add_error(
                    None,
                    "The import failed on the server's side. Nothing was imported; "
                    "the error is in the server's log.",
                )
            else:
                self.message_user(request, f"Imported: {summary}.", messages.SUCCESS)
                return redirect("admin:digest_importrun_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import papers",
            "opts": self.model._meta,
            "form": form,
            "errors": errors,
            "feeds": settings.PAPERBOY_FEED_URLS,
        }
        return TemplateResponse(request, "admin/digest/importrun/import.html", context)

    def import_feeds_view(self, request):
        if request.method != "POST" or not self._may_import(request):
            return redirect("admin:digest_importrun_changelist")
        if not settings.PAPERBOY_FEED_URLS:
            self.message_user(
                request, "No feeds are configured (PAPERBOY_FEED_URLS).", messages.WARNING
            )
        else:
            transaction.on_commit(tasks.import_feeds.delay)
            self.message_user(
                request,
                f"Importing {len(settings.PAPERBOY_FEED_URLS)} feed(s) in the background; "
                "each appears here when it is done.",
                messages.SUCCESS,
            )
        return redirect("admin:digest_importrun_changelist")


@admin.register(SchedulingPass)
class SchedulingPassAdmin(admin.ModelAdmin):
    list_display = ["started_at", "finished_at", "claimed", "requeued", "error"]
    list_filter = [("error", admin.EmptyFieldListFilter)]
    date_hierarchy = "started_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


PAPERBOY_TASKS = {
    "digest.import_feeds": "Fetches the feeds in PAPERBOY_FEED_URLS; results under Import runs.",
    "digest.schedule_digests": "Claims every due digest once and queues the sending; "
    "results under Scheduling passes. A shorter interval sends closer to each reader's hour.",
    "subscriptions.process_pending_delivery_events": "Acts on ESP webhook events that the "
    "web request could not hand to a worker.",
}


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(BasePeriodicTaskAdmin):
    """django-celery-beat's schedules, with what Paperboy's own tasks are for."""

    list_display = ["name", "purpose", "enabled", "interval", "crontab", "last_run_at"]
    list_select_related = ["interval", "crontab", "solar", "clocked"]
    change_list_template = "admin/django_celery_beat/periodictask/change_list.html"

    @admin.display(description="What it does")
    def purpose(self, task):
        return PAPERBOY_TASKS.get(task.task) or task.description[:120] or "—"

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        help_texts = {
            "enabled": "Untick to stop this task without losing its schedule.",
            "interval": "How often it runs. Beat picks up a change within a few seconds.",
            "description": "What the task is for, shown in the list.",
        }
        for name, text in help_texts.items():
            if name in form.base_fields:
                form.base_fields[name].help_text = text
        return form
