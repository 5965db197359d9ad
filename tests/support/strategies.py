"""Hostile input for the property tests (tests/system/test_properties.py).

Two kinds. Structured: values that look right and are not (a token cut short or
signed with another key, a time zone that does not exist, a line break in an address),
each drawn with what the form must make of it, so the tests know the answer without
asking the code under test. And noise: any text, bytes and content type.

A field is a ``Field``: the values posted under its name (several when a field is
repeated, none when it is missing) and whether the form must accept them: True, False,
or None when only the code under test can tell (random text in an address).
"""

import json
import string
import zoneinfo
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import time_machine
from django.core import signing
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from hypothesis import strategies as st

from digest import links
from subscriptions.tokens import Purpose, make_token
from tests.support.esp_payloads import basic_auth

TIMEZONES = sorted(zoneinfo.available_timezones())
CONTROL = ["\x00", "\r", "\n", "\r\n", "\x0b", "\x0c", "\x1b", "\x7f", "\u2028", "\u2029", "\x08"]
FORM_TYPES = [MULTIPART_CONTENT, "application/x-www-form-urlencoded"]
CONTENT_TYPES = [
    *FORM_TYPES,
    "multipart/form-data",  # no boundary
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=x" + "-" * 80,
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "text/html; charset=utf-8",
    "application/octet-stream",
    "",
    "garbage",
    "message/rfc822",
]


def and_all(*valid: bool | None) -> bool | None:
    """False if any part is invalid, True if every part is valid, else unknown."""
    if False in valid:
        return False
    return None if None in valid else True


@dataclass(frozen=True)
class Field:
    values: tuple[str, ...]
    valid: bool | None

    @property
    def last(self) -> str | None:
        """What the form reads for a single-valued field: the last value posted."""
        return self.values[-1] if self.values else None


# --- text ---------------------------------------------------------------------------

# Any text a browser can post (surrogates cannot be encoded in UTF-8), mostly short.
any_text = st.text(max_size=40)


@st.composite
def huge(draw, min_size: int = 300) -> str:
    """A long string, cheaply: a short piece repeated."""
    piece = draw(st.text(min_size=1, max_size=6))
    size = draw(st.sampled_from([min_size, 1_000, 10_000, 100_000]))
    return (piece * (size // len(piece) + 1))[:size]


@st.composite
def with_junk(draw, base: str) -> str:
    """``base`` with a control character or line break put somewhere in it."""
    junk = draw(st.sampled_from(CONTROL))
    at = draw(st.integers(0, len(base)))
    return base[:at] + junk + base[at:]


# --- form fields ----------------------------------------------------------------------


# Each field strategy draws a valid value, or with ``broken`` a hostile one. A valid field
# may be posted more than once, with anything before its last value: the form reads the
# last one.


def _earlier(values) -> st.SearchStrategy[list[str]]:
    return st.lists(st.one_of(st.sampled_from(values), any_text), max_size=2)


@st.composite
def choice(draw, valid_values: list[str], hostile: list[str], broken: bool) -> Field:
    """A ChoiceField: exactly one of ``valid_values`` is valid, anything else is not."""
    earlier = draw(_earlier(valid_values))
    if not broken:
        return Field((*earlier, draw(st.sampled_from(valid_values))), True)
    if draw(st.integers(0, 4)) == 0:
        return Field((), False)  # required
    value = draw(
        st.one_of(
            st.sampled_from(hostile),
            any_text,
            huge(),
            st.sampled_from(valid_values).flatmap(with_junk),
        )
    )
    return Field((*earlier, value), value in valid_values)


FREQUENCIES = (["daily", "weekly"], ["hourly", "DAILY", "Weekly ", "0", "monthly"])
WEEKDAYS = ([str(d) for d in range(7)], ["7", "-1", "Monday", "1.0", "٣", "06"])
SEND_HOURS = ([str(h) for h in range(24)], ["24", "-1", "eight", "08", "8.0", "9" * 20])
ZONES = (
    TIMEZONES,
    ["Mars/Olympus_Mons", "utc", "Europe/paris", "../../etc/passwd", "UTC\x00", "Europe/"],
)


@st.composite
def max_papers(draw, broken: bool) -> Field:
    if not broken:
        earlier = draw(_earlier(["0", "51", "ten"]))
        return Field((*earlier, str(draw(st.integers(1, 50)))), True)
    kind = draw(st.sampled_from(["out-of-range", "word", "other", "missing"]))
    match kind:
        case "out-of-range":
            number = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=51)))
            return Field((str(number),), False)
        case "word":
            return Field((draw(st.sampled_from(["ten", "", "NaN", "inf", "1e3", "x1"])),), False)
        case "missing":
            return Field((), False)
    # Django's IntegerField takes "+7", " 7 ", "7.0" and Unicode digits: unknown here.
    return Field((draw(st.one_of(any_text, huge(), st.just("9" * 5000))),), None)


# Interests from a plain alphabet, so that what the form makes of them is known here:
# the key of "Graph  Models" is "graph models".
WORDS = ["graph", "neural", "protein", "folding", "diffusion", "models", "sparse", "robot"]
interest_phrases = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)


def interest_key(phrase: str) -> str:
    return " ".join(phrase.lower().split())


@st.composite
def interests(draw, broken: bool) -> Field:
    """The comma-separated interests."""
    phrases = draw(st.lists(interest_phrases, max_size=12))
    separator = draw(st.sampled_from([", ", ",", " , ", ",,", ",\t", ",\r\n"]))
    if not broken:
        if draw(st.integers(0, 3)) == 0:
            return Field(draw(st.sampled_from([(), ("",), ("  ",), (" , ,",)])), True)
        value = separator.join(phrases)
        keys = {interest_key(p) for p in phrases}
        return Field((value,), len(keys) <= 10 and len(value.strip()) <= 500)
    kind = draw(
        st.sampled_from(
            ["too-many", "too-many", "too-long-one", "no-letters", "control", "huge", "any"]
        )
    )
    match kind:
        case "too-many":
            many = [f"{WORDS[i % len(WORDS)]} {i}" for i in range(draw(st.integers(11, 30)))]
            return Field((", ".join(many),), False)
        case "too-long-one":
            return Field((", ".join([*phrases, "x" * draw(st.integers(81, 499))]),), False)
        case "no-letters":
            return Field((", ".join([*phrases, draw(st.sampled_from(["!!!", "--", "…"]))]),), False)
        case "control":
            value = draw(with_junk(separator.join(phrases)))
            # Line breaks are spaces to the form, other controls are refused, and the
            # field strips whitespace (some controls among it) from both ends first.
            refused = any(c in value.strip() for c in CONTROL if c not in "\r\n")
            return Field((value,), False if refused else None)
        case "huge":
            return Field(("x" + draw(huge(min_size=500)) + "x",), False)
    return Field((draw(any_text),), None)


@st.composite
def topic_ids(draw, curated: list[int], hostile: list[str], broken: bool) -> Field:
    """Curated topic ids (any subset is valid), or among them ids that are not curated
    topics: another subscriber's interest, ids that do not exist, text, numbers past
    bigint."""
    values = [str(pk) for pk in draw(st.lists(st.sampled_from(curated), max_size=4))]
    if not broken:
        return Field(tuple(values), True)
    if draw(st.booleans()):
        values.insert(draw(st.integers(0, len(values))), draw(st.sampled_from(hostile)))
        return Field(tuple(values), False)
    values.append(draw(st.one_of(any_text, huge())))
    return Field(tuple(values), None)


def hostile_topic_ids(others: list[int]) -> list[str]:
    return [*(str(pk) for pk in others), "999999999", "0", "-1", "abc", "", "1\x00", "9" * 30]


local_parts = st.text(string.ascii_lowercase + string.digits + "+_-", min_size=1, max_size=20)
domains = st.sampled_from(["example.org", "mail.example.net", "xn--bcher-kva.example"])


@st.composite
def emails(draw, own: str, other: str, broken: bool) -> Field:
    """A new address, an existing subscriber's in another case, or a broken one."""
    new = f"{draw(local_parts)}@{draw(domains)}"
    if not broken:
        kind = draw(st.sampled_from(["new", "new", "own", "other"]))
        pad = draw(st.sampled_from(["", " ", "  "]))
        if kind != "new":
            local, _, domain = (own if kind == "own" else other).partition("@")
            new = local + "@" + domain.upper()
        return Field((pad + new + pad,), True)
    kind = draw(st.sampled_from(["junk", "huge", "no-at", "missing", "any"]))
    match kind:
        case "junk":
            return Field((draw(with_junk(new)),), False)
        case "huge":
            return Field((draw(huge(min_size=255)) + "@example.org",), False)
        case "no-at":
            return Field((new.replace("@", draw(st.sampled_from(["", " ", "@@", "(at)"]))),), False)
        case "missing":
            return Field(draw(st.sampled_from([(), ("",), ("   ",)])), False)
    return Field((draw(st.one_of(any_text, st.emails().map(str))),), None)


@st.composite
def honeypots(draw, broken: bool) -> Field:
    """The hidden "website" field: empty for people; "broken", filled in as bots do."""
    if not broken:
        return Field(draw(st.sampled_from([(), ("",), (" ",)])), True)
    value = draw(st.one_of(st.just("http://spam.example"), any_text))
    # CharField refuses NUL; anything else that is not whitespace marks a bot.
    return Field((value,), "\x00" not in value)


@dataclass
class FormCase:
    fields: dict[str, Field]
    extra: list[tuple[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> bool | None:
        topics, interests = self.fields["topics"], self.fields["interests"]
        has_topic = bool(topics.values) or any(
            part.strip() for value in interests.values[-1:] for part in value.split(",")
        )
        # Form.clean only asks for a topic or an interest when the interests are valid.
        return and_all(*(f.valid for f in self.fields.values()), has_topic)

    def value(self, name: str) -> str | None:
        return self.fields[name].last

    def pairs(self) -> list[tuple[str, str]]:
        return [(n, v) for n, f in self.fields.items() for v in f.values] + self.extra

    def encode(self, content_type: str) -> bytes:
        if content_type == MULTIPART_CONTENT:
            data: dict[str, list[str]] = {}
            for name, value in self.pairs():
                data.setdefault(name, []).append(value)
            return encode_multipart(BOUNDARY, data)
        return urlencode(self.pairs()).encode()


def preference_forms(curated: list[int], others: list[int], email: str, other_email: str):
    """The manage form (``email`` None) or the signup form: valid but for the fields
    drawn hostile."""

    @st.composite
    def build(draw) -> FormCase:
        makers = {
            "topics": lambda broken: topic_ids(curated, hostile_topic_ids(others), broken),
            "interests": interests,
            "frequency": lambda broken: choice(*FREQUENCIES, broken),
            "weekday": lambda broken: choice(*WEEKDAYS, broken),
            "send_hour": lambda broken: choice(*SEND_HOURS, broken),
            "timezone": lambda broken: choice(*ZONES, broken),
            "max_papers": max_papers,
        }
        if email is not None:
            makers["email"] = lambda broken: emails(email, other_email, broken)
            makers["website"] = honeypots
        names = sorted(makers)
        # As often all valid, one field broken (the only reason to refuse the form), or
        # up to three.
        broken = draw(
            st.one_of(
                st.just(set()),
                st.sampled_from(names).map(lambda name: {name}),
                st.sets(st.sampled_from(names), max_size=3),
            )
        )
        fields = {name: draw(make(name in broken)) for name, make in makers.items()}
        # Fields no form has: ignored, whatever they hold.
        extra = draw(st.lists(st.tuples(st.sampled_from(["csrfmiddlewaretoken", "x"]), any_text)))
        return FormCase(fields, extra)

    return build()


@st.composite
def bodies(draw) -> tuple[bytes, str]:
    """Any body with any content type, or a JSON document, or a form."""
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    kind = draw(st.sampled_from(["bytes", "text", "json", "form"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)), content_type
    if kind == "text":
        return draw(st.one_of(any_text, huge())).encode("utf-8"), content_type
    if kind == "json":
        return json.dumps(draw(json_values)).encode(), content_type
    pairs = draw(st.lists(st.tuples(any_text, any_text), max_size=6))
    return urlencode(pairs).encode(), content_type


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


# --- tokens ---------------------------------------------------------------------------


def _ns(key) -> SimpleNamespace:
    return SimpleNamespace(key=key)


def _mutations(token: str) -> st.SearchStrategy[str]:
    """The token cut short, with a character dropped, changed or added, or re-cased."""
    alphabet = string.ascii_letters + string.digits + ":-_=."
    at = st.integers(0, len(token) - 1)
    return st.one_of(
        at.map(lambda i: token[:i]),
        at.map(lambda i: token[:i] + token[i + 1 :]),
        st.tuples(at, st.sampled_from(alphabet)).map(
            lambda t: token[: t[0]] + t[1] + token[t[0] + 1 :]
        ),
        st.tuples(at, st.text(min_size=1, max_size=3)).map(
            lambda t: token[: t[0]] + t[1] + token[t[0] :]
        ),
        st.just(token.swapcase()),
        st.just(token + token),
        st.just(token.replace(":", "%3A")),
        st.just(f" {token}"),
    ).filter(lambda t: t != token)


def subscription_tokens(owner, other, purpose: Purpose, valid: str | None = None):
    """(token, what it is) for a subscription link made for ``owner``: "valid" (``valid``
    when given: a test comparing tokens needs the very same string, and a second
    boundary between two signings changes it), "old" (signed two years ago), or "bad":
    forged or meant for something else, some of them made of ``other``'s key (who must
    never be shown or changed)."""
    valid = valid or make_token(owner, purpose)
    with time_machine.travel("2024-01-01 00:00Z", tick=False):
        old = make_token(owner, purpose)
    salt = f"paperboy.subscriptions.{purpose}"
    _, _, stamp_and_signature = valid.partition(":")
    forged = [
        f"{other.key.hex}:{stamp_and_signature}",  # another subscriber's key, this signature
        signing.TimestampSigner(key="not-the-secret-key", salt=salt).sign(owner.key.hex),
        signing.TimestampSigner(key="not-the-secret-key", salt=salt).sign(other.key.hex),
        signing.TimestampSigner(salt="paperboy.subscriptions").sign(owner.key.hex),
        signing.TimestampSigner(salt=salt.upper()).sign(other.key.hex),
        signing.TimestampSigner(salt=links.FEEDBACK_SALT).sign(owner.key.hex),
        owner.key.hex,
        str(owner.key),
        other.key.hex,
        *(make_token(owner, p) for p in Purpose if p != purpose),
        *(make_token(other, p) for p in Purpose if p != purpose),
    ]
    # One draw in three the real link, so that what a valid link does is tried as
    # often as what a forged one does not.
    return st.sampled_from(["valid", "valid", "old", "cut", "forged", "noise"]).flatmap(
        lambda kind: {
            "valid": st.just((valid, "valid")),
            "old": st.just((old, "old")),
            "cut": _mutations(valid).map(lambda t: (t, "bad")),
            "forged": st.sampled_from(forged).map(lambda t: (t, "bad")),
            "noise": st.one_of(any_text, huge()).map(lambda t: (t, "bad")),
        }[kind]
    )


def object_tokens(salt: str, owner: list[dict], unusable: list, foreign: list[dict]):
    """(token, what it is) for a signed object (feedback, view in browser): a link made
    for the owner ("valid"), or one that must not work ("bad"): forged, signed for
    another purpose, or signed by the site but naming nobody's data (``unusable``: an
    unknown paper, a digest of someone else's). ``foreign`` are another subscriber's
    links, used only cut up or re-signed with another key."""
    signer = signing.TimestampSigner(salt=salt)
    valid = [signer.sign_object(data) for data in owner]
    other_salt = links.VIEW_SALT if salt == links.FEEDBACK_SALT else links.FEEDBACK_SALT
    stranger = signing.TimestampSigner(key="not-the-secret-key", salt=salt)
    signature = valid[0].partition(":")[2]
    forged = [
        *(stranger.sign_object(data) for data in [*owner, *foreign]),
        *(signing.TimestampSigner(salt=other_salt).sign_object(data) for data in owner),
        signing.TimestampSigner(salt="paperboy.subscriptions.manage").sign_object(owner[0]),
        signing.dumps(owner[0], salt=salt, compress=True)[::-1],
        *(f"{signer.sign_object(data).partition(':')[0]}:{signature}" for data in foreign),
        *(signer.sign_object(data) for data in unusable),
    ]
    return st.sampled_from(["valid", "valid", "cut", "forged", "noise"]).flatmap(
        lambda kind: {
            "valid": st.sampled_from(valid).map(lambda t: (t, "valid")),
            "cut": st.sampled_from(valid).flatmap(_mutations).map(lambda t: (t, "bad")),
            "forged": st.sampled_from(forged).map(lambda t: (t, "bad")),
            "noise": st.one_of(any_text, huge()).map(lambda t: (t, "bad")),
        }[kind]
    )


def path(prefix: str, token: str, suffix: str = "/") -> str:
    """The URL a browser requests for a link holding ``token``, whatever it contains."""
    return f"{prefix}{quote(token, safe='')}{suffix}"


# --- headers --------------------------------------------------------------------------

# What a WSGI server hands over in a header: latin-1 text without NUL, CR or LF (gunicorn
# refuses those outright; so do h11 and uvicorn).
header_text = st.text(
    st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\r\n"), max_size=600
)


@st.composite
def authorizations(draw, secret: str) -> tuple[str | None, bool]:
    """An Authorization header (or none) and whether it carries the webhook secret."""
    kind = draw(st.sampled_from(["right", "right", "right", "wrong", "none", "bearer", "junk"]))
    match kind:
        case "right":
            return basic_auth(secret), True
        case "wrong":
            user, _, password = secret.partition(":")
            guess = draw(st.sampled_from([f"{user}:", f"{user}:{password}x", password, ""]))
            return basic_auth(draw(st.one_of(st.just(guess), any_text))), False
        case "none":
            return None, False
        case "bearer":
            return f"Bearer {secret}", False
    return draw(header_text), False


# --- ESP payloads -----------------------------------------------------------------------
# Built by tests/support/esp_payloads.py (``minimal=True``); here, the kinds of event
# drawn and what a payload is mutated with.

EVENT_KINDS = ["hard_bounce", "soft_bounce", "complaint", "unsubscribe", "delivered", "opened"]

HOSTILE_JSON = st.one_of(
    st.sampled_from([None, "", [], {}, 0, -1, 10**20, 1e308, True, "\x00", "a@b\r\nBcc: c@d"]),
    any_text,
    huge(),
    json_values,
)


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))


@st.composite
def mutated(draw, payload: dict) -> dict:
    """The payload with one to three fields replaced by hostile values, or removed."""
    payload = json.loads(json.dumps(payload))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(payload))
        if not paths:
            break
        *parents, last = draw(st.sampled_from(paths))
        target = payload
        for key in parents:
            target = target[key]
        if draw(st.booleans()):
            target[last] = draw(HOSTILE_JSON)
        else:
            del target[last]
    return payload
