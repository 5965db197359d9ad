"""anymail's webhook URLs, with malformed payloads answered 400 instead of 500.

anymail trusts a payload's shape once its auth checks out: invalid JSON, a list where
an object belongs or undecodable bytes raise ValueError/TypeError deep in its parsers,
Django answers 500, and the ESP retries the same junk for days. Only parsing and
validation errors become a 400 here; an error while acting on a valid event still
gives a 500, so that the ESP retries it.

anymail mounts a webhook for every ESP it knows, and most of them need a key or a package
that only the operator of that ESP installs; without it anymail raises on every request,
which anyone on the internet could turn into a stream of 500s. Those webhooks answer 404,
as if they were not there, and say why in the log.
"""

import logging

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailConfigurationError, AnymailWebhookValidationFailure
from anymail.signals import tracking
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import Http404
from django.urls import URLPattern
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)

# OverflowError: a timestamp of 1e20 seconds, which datetime cannot hold.
# OSError: datetime.fromtimestamp() raises it (EOVERFLOW), not OverflowError, for a
# timestamp past the platform's range, and anymail hands it payload numbers as they are.
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, OSError)
# What subscriptions.deliverability.record() stores of a tracking event.
TEXT_FIELDS = ("event_id", "recipient", "message_id", "description", "mta_response")


class StrictPayload:
    unconfigured: AnymailConfigurationError | None = None

    def __init__(self, **kwargs):
        # Some ESPs read their keys here, others only when a request comes (dispatch).
        try:
            super().__init__(**kwargs)
        except AnymailConfigurationError as exc:
            self.unconfigured = exc

    # as_view() takes csrf_exempt from dispatch: this override must carry it as
    # anymail's does, or every ESP post would be refused for want of a CSRF token.
    @method_decorator(csrf_exempt)
    def dispatch(self, request, *args, **kwargs):
        try:
            if self.unconfigured:
                raise self.unconfigured
            return super().dispatch(request, *args, **kwargs)
        except AnymailConfigurationError as exc:
            logger.warning("%s webhook is not configured: %s", self.esp_name, exc)
            raise Http404(f"No {self.esp_name} webhook here") from exc

    def run_validators(self, request):
        try:
            super().run_validators(request)
        except AnymailWebhookValidationFailure:
            raise
        except MALFORMED as exc:
            raise AnymailWebhookValidationFailure(
                f"Malformed {self.esp_name} webhook payload"
            ) from exc

    def parse_events(self, request):
        try:
            events = super().parse_events(request)
        except MALFORMED as exc:
            raise AnymailWebhookValidationFailure(
                f"Malformed {self.esp_name} webhook payload"
            ) from exc
        if self.signal is tracking:
            for event in events:
                self._check(event)
            # An event about no recipient and no message is nothing to act on ({} parses
            # to one); drop it, but keep the real bounces posted in the same batch.
            useful = [e for e in events if e.recipient or e.message_id]
            if events and not useful:
                raise AnymailWebhookValidationFailure(
                    f"{self.esp_name} tracking event without a recipient or message id"
                )
            events = useful
        return events

    def _check(self, event) -> None:
        """anymail passes the payload's values through as they came: a number where the
        address belongs would fail to be stored (a 500), and text that is not an address
        would be stored as one, then suppressed."""
        for name in TEXT_FIELDS:
            value = getattr(event, name)
            # PostgreSQL text cannot hold NUL.
            if value is not None and (not isinstance(value, str) or "\x00" in value):
                raise AnymailWebhookValidationFailure(
                    f"{self.esp_name} tracking event with a malformed {name}"
                )
        if event.recipient:
            try:
                validate_email(event.recipient)
            except ValidationError:
                event.recipient = None


def _strict(pattern: URLPattern) -> URLPattern:
    view_class = pattern.callback.view_class
    strict = type(f"Strict{view_class.__name__}", (StrictPayload, view_class), {})
    return URLPattern(pattern.pattern, strict.as_view(), pattern.default_args, pattern.name)


urlpatterns = [_strict(pattern) for pattern in anymail_urls.urlpatterns]
