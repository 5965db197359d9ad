"""The digests in the admin: the delivery log, the ledger, the scheduling passes; and,
over the subscriptions admin, a subscriber's next digest (preview, test send) and the
digest each delivery event is about."""

import logging
import smtplib

from anymail.exceptions import AnymailError
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from digest import previews, rendering, sending
from digest.models import Digest, DigestItem, SchedulingPass
from subscriptions import admin as subscriptions_admin
from subscriptions import deliverability
from subscriptions.models import DeliveryEvent, Subscriber

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
        rendered = rendering.render_sent_digest(digest)
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


admin.site.unregister(Subscriber)


@admin.register(Subscriber)
class SubscriberAdmin(subscriptions_admin.SubscriberAdmin):
    """The subscriptions admin, with the digest a subscriber would get now: previewed,
    or sent as a test."""

    change_form_template = "admin/digest/subscriber/change_form.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="{}_{}_preview".format(*info),
            ),
            path(
                "<path:object_id>/send-test/",
                self.admin_site.admin_view(self.send_test_view),
                name="{}_{}_send_test".format(*info),
            ),
            *super().get_urls(),
        ]

    def _subscriber_or_redirect(self, request, object_id, permission):
        subscriber = self.get_object(request, unquote(object_id))
        if subscriber is None:
            return None, self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not permission(request, subscriber):
            raise PermissionDenied
        return subscriber, None

    def _page_context(self, request, subscriber, title, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": subscriber,
            "subscriber": subscriber,
            "title": title,
            **extra,
        }

    def preview_view(self, request, object_id):
        subscriber, redirect = self._subscriber_or_redirect(
            request, object_id, self.has_view_or_change_permission
        )
        if redirect:
            return redirect
        rendered = previews.preview(subscriber, timezone.now())
        if rendered is None:
            context = self._page_context(request, subscriber, f"Nothing new for {subscriber}")
            return TemplateResponse(request, "admin/digest/subscriber/nothing_new.html", context)
        _, _, html = rendered
        response = HttpResponse(html)
        # The digest shows text from paper feeds; served from the admin's origin it must
        # never run a script, whatever slipped through.
        response["Content-Security-Policy"] = (
            "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'"
        )
        return response

    def send_test_view(self, request, object_id):
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        subscriber, redirect = self._subscriber_or_redirect(
            request, object_id, self.has_change_permission
        )
        if redirect:
            return redirect
        if request.method == "GET":
            context = self._page_context(
                request,
                subscriber,
                f"Send a test digest for {subscriber}",
                curator_email=request.user.email,
                suppressed=deliverability.is_suppressed(subscriber.email),
            )
            return TemplateResponse(request, "admin/digest/subscriber/send_test.html", context)
        self._send_test_digest(request, subscriber, request.POST.get("to"))
        return HttpResponseRedirect(request.path)

    def _send_test_digest(self, request, subscriber, to: str | None) -> None:
        if to == "me":
            address = request.user.email
            if not address:
                self.message_user(
                    request,
                    "Your account has no email address: add one to your user to get test copies.",
                    messages.ERROR,
                )
                return
        elif to == "subscriber":
            address = None
        else:
            self.message_user(request, "Choose where the test goes.", messages.ERROR)
            return
        try:
            sent = sending.send_test(subscriber, address, timezone.now())
        except sending.CannotSend as exc:
            self.message_user(request, f"Not sent: {exc}", messages.ERROR)
        except (smtplib.SMTPException, AnymailError, OSError) as exc:
            self.message_user(
                request,
                f"The mail server did not take the digest ({type(exc).__name__}: {exc}). "
                "Nothing was recorded as sent.",
                messages.ERROR,
            )
        else:
            if not sent:
                self.message_user(
                    request,
                    f"Nothing new for {subscriber}: no digest was sent.",
                    messages.WARNING,
                )
            elif address:
                self.message_user(
                    request,
                    f"Sent a test copy ({sent} paper(s)) to {address}. Nothing was recorded: "
                    "the subscriber still gets these papers in their next digest.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    f"Sent their digest ({sent} paper(s)) to {subscriber}; it is recorded as "
                    "sent, and these papers will not come again.",
                    messages.SUCCESS,
                )


admin.site.unregister(DeliveryEvent)


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(subscriptions_admin.DeliveryEventAdmin):
    """The subscriptions admin's delivery events, each with the digest it is about."""

    list_display = [*subscriptions_admin.DeliveryEventAdmin.list_display, "digest_link"]
    readonly_fields = ["digest_link"]

    def get_queryset(self, request):
        # A subquery in the page's own query (message_id is indexed), not one per row;
        # unsent digests have no message id and match no event.
        digests = Digest.objects.filter(message_id=OuterRef("message_id")).exclude(message_id="")
        return (
            super()
            .get_queryset(request)
            .annotate(digest_id=Subquery(digests.order_by("pk").values("pk")[:1]))
        )

    @admin.display(description="Digest")
    def digest_link(self, event):
        if event.digest_id is None:
            return "—"
        url = reverse("admin:digest_digest_change", args=[event.digest_id])
        return format_html('<a href="{}">#{}</a>', url, event.digest_id)
