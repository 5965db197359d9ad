import re
from functools import cache

from django import forms
from django.core.exceptions import ValidationError
from django.utils.choices import BaseChoiceIterator

from core.text import clean_line, has_control_characters, normalise_key
from papers.models import Topic
from subscriptions.models import MAX_PAPERS_LIMIT, Subscriber, _timezones, normalise_email

MAX_INTERESTS = 10
MAX_INTEREST_LENGTH = 80

# RFC 2047 forbids encoded-words in an address, but mail software decodes them anyway:
# "=?utf-8?b?YWRh?=@example.org" is shown as ada@example.org, and Django's mailer
# refuses to write one that decodes to a space.
ENCODED_WORD = re.compile(r"=\?[^?]*\?[bq]\?[^?]*\?=", re.IGNORECASE)


class TimezoneChoices(BaseChoiceIterator):
    """The ~600 IANA zones, listed once per process. Given as a list, Django would
    normalise it again for every form built, one per sign-up: about a tenth of a
    sign-up's time in bench.signup."""

    @staticmethod
    @cache
    def _choices() -> tuple[tuple[str, str], ...]:
        return tuple((name, name) for name in sorted(_timezones()))

    def __iter__(self):
        return iter(self._choices())


HOUR_CHOICES = [(hour, f"{hour:02d}:00") for hour in range(24)]


class TopicsField(forms.ModelMultipleChoiceField):
    """Django checks each id with an exact lookup, which knows a bigint's range, then
    fetches them together with IN, which does not: on SQLite an id past 2**63 raised
    OverflowError, a 500. Such an id is no topic."""

    def clean(self, value):
        for pk in value if isinstance(value, (list, tuple)) else ():
            try:
                number = int(pk)
            except (TypeError, ValueError):
                continue  # refused by Django's own check
            if not -(2**63) <= number < 2**63:
                raise ValidationError(
                    self.error_messages["invalid_choice"],
                    code="invalid_choice",
                    params={"value": pk},
                )
        return super().clean(value)


class PreferencesForm(forms.Form):
    topics = TopicsField(
        queryset=Topic.objects.curated(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Topics",
    )
    interests = forms.CharField(
        required=False,
        max_length=500,
        label="Your own interests",
        help_text="Comma-separated keywords or phrases, e.g. protein folding, graph transformers.",
    )
    frequency = forms.ChoiceField(
        choices=Subscriber.Frequency.choices,
        widget=forms.RadioSelect,
        initial=Subscriber.Frequency.DAILY,
        label="How often",
    )
    weekday = forms.TypedChoiceField(
        choices=Subscriber.Weekday.choices,
        coerce=int,
        initial=Subscriber.Weekday.MONDAY,
        label="Day (weekly digests)",
    )
    send_hour = forms.TypedChoiceField(
        choices=HOUR_CHOICES, coerce=int, initial=8, label="Send at (your time)"
    )
    timezone = forms.ChoiceField(choices=TimezoneChoices(), initial="UTC", label="Time zone")
    max_papers = forms.IntegerField(
        min_value=1, max_value=MAX_PAPERS_LIMIT, initial=10, label="Papers per digest, at most"
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_interests(self) -> list[str]:
        raw = self.cleaned_data["interests"]
        if has_control_characters(raw):
            raise ValidationError("Interests cannot contain control characters.")
        interests, seen = [], set()
        for part in raw.split(","):
            text = clean_line(part)
            if not text:
                continue
            if len(text) > MAX_INTEREST_LENGTH:
                raise ValidationError(
                    f"Keep each interest under {MAX_INTEREST_LENGTH} characters: “{text[:30]}…”."
                )
            key = normalise_key(text)
            if not key:
                raise ValidationError(f"“{text}” needs at least one letter or digit.")
            if key not in seen:
                seen.add(key)
                interests.append(text)
        if len(interests) > MAX_INTERESTS:
            raise ValidationError(f"Choose at most {MAX_INTERESTS} interests.")
        return interests

    def clean(self):
        cleaned = super().clean()
        if (
            not cleaned.get("topics")
            and not cleaned.get("interests")
            and not self.has_error("interests")
        ):
            raise ValidationError("Pick at least one topic or type an interest.", code="no_topics")
        return cleaned


class SignupForm(PreferencesForm):
    email = forms.EmailField(max_length=254, label="Email address")
    # A field people never see and bots fill in.
    website = forms.CharField(required=False, label="Leave this field empty")

    field_order = ["email"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs.update(
            autocomplete="email", placeholder="you@example.org"
        )
        self.fields["website"].widget.attrs.update(tabindex="-1", autocomplete="off")
        # paperboy.js swaps UTC for the browser's zone; without JavaScript, UTC stays.
        self.fields["timezone"].widget.attrs["data-browser-timezone"] = ""

    def clean_email(self) -> str:
        # Checked on the raw value: the field has already stripped surrounding whitespace,
        # and a line break anywhere is an attempt to inject mail headers.
        raw = str(self.data.get("email", ""))
        if any(ord(char) < 32 or char in "\x7f\u2028\u2029" for char in raw):
            raise ValidationError(
                "An email address cannot contain line breaks or control characters."
            )
        address = normalise_email(self.cleaned_data["email"])
        if address.rpartition("@")[2].startswith("["):
            # x@[10.0.0.5]: Django's validator takes it, mail headers cannot carry it,
            # and nobody subscribes from a bare IP address.
            raise ValidationError("Enter an address at a domain name, not an IP address.")
        if ENCODED_WORD.search(address):
            raise ValidationError("An email address cannot contain an encoded word (=?…?=).")
        return address

    @property
    def is_bot(self) -> bool:
        return bool(self.cleaned_data.get("website"))
