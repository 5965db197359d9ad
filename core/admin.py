"""Admin helpers for any app: a confirmation page, keyset paging, CSV cells.

``confirm_action`` is an intermediate "are you sure?" page for admin actions that
change many rows. Like Django's own delete confirmation, but for any action, with an optional form
(a reason, a target topic). With "select all N" ticked the page carries the flag and
the one page of ticked ids, not N ids, so confirming an action on 100,000 rows is
still a small page.
"""

import datetime as dt
from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.template.response import TemplateResponse

PREVIEW_ROWS = 20


def confirm_action(
    modeladmin,
    request,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    explanation: str = "",
    apply: Callable[..., str],
    form_class: type[forms.Form] | None = None,
    button: str = "Yes, go ahead",
):
    """Render the confirmation page, or, once confirmed, call
    ``apply(queryset)`` (``apply(queryset, form.cleaned_data)`` with a form) and show
    the message it returns. Returns what an admin action returns."""
    confirmed = request.POST.get("confirmed") == "yes"
    form = None
    if form_class is not None:
        form = form_class(request.POST if confirmed else None)
    if confirmed and (form is None or form.is_valid()):
        text = apply(queryset) if form is None else apply(queryset, form.cleaned_data)
        modeladmin.message_user(request, text, messages.SUCCESS)
        return None
    select_across = request.POST.get("select_across") == "1"
    count = queryset.count()
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "explanation": explanation,
        "button": button,
        "opts": modeladmin.model._meta,
        "action": action,
        "form": form,
        "count": count,
        "preview": list(queryset[:PREVIEW_ROWS]),
        "select_across": select_across,
        # The ticked ids ride along as the changelist's checkboxes would: Django runs
        # no action without one, even with "select all" (which then widens it).
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/confirm_action.html", context)


# Rows per query when an action or an export walks a selection (up to a whole table).
PAGE = 1000
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def keyset_pages(queryset, *fields: str, size: int | None = None):
    """The queryset a page at a time, in pk order: model instances, or (pk, *fields)
    tuples when fields are given.

    Keyset, not OFFSET, pagination: memory stays bounded at any size, and rows that
    drop out of the selection as the caller changes them (a status filter, say) are
    neither skipped nor repeated.
    """
    size = size or PAGE
    queryset = queryset.order_by("pk")
    if fields:
        queryset = queryset.values_list("pk", *fields)
    last_pk = None
    while True:
        page = list((queryset if last_pk is None else queryset.filter(pk__gt=last_pk))[:size])
        if page:
            yield page
        if len(page) < size:
            return
        last_pk = page[-1][0] if fields else page[-1].pk


def spreadsheet_safe(value):
    """A CSV cell: ISO dates, and text that a spreadsheet shows rather than evaluates."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return f"'{value}"
    return value


class Echo:
    """A file for csv.writer that hands each line back instead of keeping it."""

    def write(self, line: str) -> str:
        return line
