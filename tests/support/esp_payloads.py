"""What Postmark, Mailgun and Brevo post to anymail's webhooks, built in one place.

The webhook tests (tests/subscriptions/test_webhooks.py) post these payloads as they
are; the property tests (tests/system/test_properties.py) post them intact or mutated
(tests/support/strategies.py: ``mutated``).

``ESP.event(kind, email, message_id, seq)`` is a tracking event shaped as the ESP sends
it, with every field its documentation shows; ``postmark_inbound`` and
``mailgun_inbound`` are a mail to the mailto: List-Unsubscribe address as each posts it.
With ``minimal=True``, each keeps only the few fields that say which event it is, for
whom, about which message, when, and a bounce's details (``ESP.minimal_fields``, by
record type): the property tests mutate that form, so that a field they replace or
remove is one that decides something.

A payload is a function of its arguments, so that hypothesis can replay an example from
the values it drew: ``seq`` makes an event distinct (its time, ``at(seq)``, its id and
Mailgun's token). Only ``ESP.message_id()``, the id a send would have been given, is
new each time.
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable

# The credentials the tests give anymail: the webhooks' basic auth, Mailgun's signing key.
SECRET = "hook:s3cret"
SIGNING_KEY = "key-test"
BASE = dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)
# The address of the mailto: List-Unsubscribe, and who writes to it.
INBOUND_ADDRESS = "unsubscribe@papers.example"
INBOUND_SENDER = "someone.else@example.net"
INBOUND_MESSAGE_ID = "<inbound-1@mail.example.net>"


def at(seq: int) -> dt.datetime:
    """The time an event with this sequence number happened (distinct per event)."""
    return BASE + dt.timedelta(minutes=seq)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def basic_auth(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def mailgun_signature(timestamp: str, token: str, key: str = SIGNING_KEY) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def _token(label: str) -> str:
    """A Mailgun webhook token (50 hex digits), the same for the same label."""
    return hashlib.sha256(f"token-{label}".encode()).hexdigest()[:50]


def _event_id(seq: int) -> str:
    """A Mailgun event id (16 bytes, URL-safe base64), the same for the same ``seq``."""
    digest = hashlib.sha256(f"event-{seq}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _only(payload: dict, paths: Iterable[str]) -> dict:
    """The fields of ``payload`` at ``paths`` ("a.b.c" for nested ones), nested as they
    were; a path the payload does not have is left out."""
    kept: dict = {}
    for path in paths:
        *parents, last = path.split(".")
        source = payload
        for key in parents:
            source = source.get(key, {})
        if last in source:
            target = kept
            for key in parents:
                target = target.setdefault(key, {})
            target[last] = source[last]
    return kept


class ESP:
    name: str
    url: str
    # The kinds of event with an effect of their own (the webhook tests try each), and
    # three temporary failures, each counting once towards the soft bounce limit.
    kinds = (
        "hard_bounce",
        "complaint",
        "rejected",
        "unsubscribe",
        "delivered",
        "opened",
        "clicked",
    )
    soft_kinds: tuple[str, str, str]
    # The fields ``event(..., minimal=True)`` keeps, by the event's record type.
    minimal_fields: dict[str, tuple[str, ...]]

    def message_id(self) -> str:
        """What Digest.message_id holds (anymail's status id) for a message sent here."""
        raise NotImplementedError

    def record_type(self, payload: dict) -> str:
        raise NotImplementedError

    def full_event(self, kind: str, email: str, message_id: str, seq: int) -> dict:
        raise NotImplementedError

    def event(self, kind: str, email: str, message_id: str, seq: int, *, minimal=False) -> dict:
        payload = self.full_event(kind, email, message_id, seq)
        if minimal:
            return _only(payload, self.minimal_fields[self.record_type(payload)])
        return payload

    def body(self, payload) -> bytes:
        return json.dumps(payload).encode()


# --- Postmark -----------------------------------------------------------------------


class Postmark(ESP):
    name = "Postmark"
    url = "/anymail/postmark/tracking/"
    soft_kinds = ("soft_bounce", "transient", "soft_bounce")
    # kind: (Type, TypeCode, Name, Description, Inactive)
    bounces = {
        "hard_bounce": (
            "HardBounce",
            1,
            "Hard bounce",
            "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            True,
        ),
        "soft_bounce": (
            "SoftBounce",
            4096,
            "Soft bounce",
            "Unable to temporarily deliver this email.",
            False,
        ),
        "transient": (
            "Transient",
            2,
            "Message delayed / Transient",
            "The server could not temporarily deliver your message.",
            False,
        ),
        "rejected": ("Blocked", 100006, "ISP block", "The ISP has blocked this message.", True),
        "complaint": (
            "SpamComplaint",
            512,
            "Spam complaint",
            "The subscriber explicitly marked this email as spam.",
            True,
        ),
    }
    _bounce_head = ("RecordType", "ID", "Type", "MessageID", "Email", "BouncedAt")
    minimal_fields = {
        "Bounce": (*_bounce_head, "Description", "Details", "Inactive"),
        "SpamComplaint": _bounce_head,
        "SubscriptionChange": (
            "RecordType",
            "MessageID",
            "ChangedAt",
            "Recipient",
            "SuppressSending",
            "SuppressionReason",
        ),
        "Delivery": ("RecordType", "MessageID", "Recipient", "DeliveredAt", "Details"),
        "Open": ("RecordType", "MessageID", "Recipient", "ReceivedAt"),
        "Click": ("RecordType", "MessageID", "Recipient", "ReceivedAt", "OriginalLink"),
    }

    def message_id(self) -> str:
        return str(uuid.uuid4())

    def record_type(self, payload):
        return payload["RecordType"]

    def _bounce(self, kind, email, message_id, seq):
        type_, code, name, description, inactive = self.bounces[kind]
        return {
            "RecordType": "Bounce",
            "ID": 4323372036854775000 + seq,
            "Type": type_,
            "TypeCode": code,
            "Name": name,
            "Tag": "digest",
            "MessageID": message_id,
            "Metadata": {},
            "ServerID": 23,
            "MessageStream": "outbound",
            "Description": description,
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Email": email,
            "From": "digest@papers.example",
            "BouncedAt": iso(at(seq)),
            "DumpAvailable": True,
            "Inactive": inactive,
            "CanActivate": True,
            "Subject": "Your Paperboy digest",
            "Content": "",
        }

    def full_event(self, kind, email, message_id, seq):
        engagement = {
            "MessageStream": "outbound",
            "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
            "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple", "Family": "OS X 10"},
            "Platform": "WebMail",
            "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) AppleWebKit/537.36",
            "Geo": {"CountryISOCode": "RS", "Country": "Serbia", "City": "Novi Sad"},
            "MessageID": message_id,
            "Metadata": {},
            "ReceivedAt": iso(at(seq)),
            "Tag": "digest",
            "Recipient": email,
        }
        match kind:
            case "complaint":
                event = self._bounce(kind, email, message_id, seq)
                return event | {"RecordType": "SpamComplaint", "Details": "", "Inactive": True}
            case _ if kind in self.bounces:
                return self._bounce(kind, email, message_id, seq)
            case "unsubscribe":
                return {
                    "RecordType": "SubscriptionChange",
                    "MessageID": message_id,
                    "ServerID": 23,
                    "MessageStream": "outbound",
                    "ChangedAt": iso(at(seq)),
                    "Recipient": email,
                    "Origin": "Recipient",
                    "SuppressSending": True,
                    "SuppressionReason": "ManualSuppression",
                    "Tag": "digest",
                    "Metadata": {},
                }
            case "delivered":
                return {
                    "RecordType": "Delivery",
                    "ServerID": 23,
                    "MessageStream": "outbound",
                    "MessageID": message_id,
                    "Recipient": email,
                    "Tag": "digest",
                    "DeliveredAt": iso(at(seq)),
                    "Details": "smtp;250 2.0.0 OK",
                    "Metadata": {},
                }
            case "opened":
                return {"RecordType": "Open", "FirstOpen": True, "ReadSeconds": 5, **engagement}
            case "clicked":
                return {
                    "RecordType": "Click",
                    "ClickLocation": "HTML",
                    "OriginalLink": "https://papers.example/digests/abc/",
                    **engagement,
                }
        raise AssertionError(kind)


# --- Mailgun ------------------------------------------------------------------------

_MAILGUN_HEAD = (
    "signature.timestamp",
    "signature.token",
    "signature.signature",
    "event-data.id",
    "event-data.timestamp",
    "event-data.recipient",
    "event-data.message.headers.message-id",
    "event-data.message.headers.to",
    "event-data.event",
)


class Mailgun(ESP):
    name = "Mailgun"
    url = "/anymail/mailgun/tracking/"
    soft_kinds = ("soft_bounce", "soft_bounce", "soft_bounce")
    minimal_fields = {
        "failed": (
            *_MAILGUN_HEAD,
            "event-data.severity",
            "event-data.reason",
            "event-data.delivery-status.code",
            "event-data.delivery-status.message",
        ),
        "rejected": (*_MAILGUN_HEAD, "event-data.reject.reason"),
        "complained": _MAILGUN_HEAD,
        "unsubscribed": _MAILGUN_HEAD,
        "delivered": _MAILGUN_HEAD,
        "opened": _MAILGUN_HEAD,
        "clicked": (*_MAILGUN_HEAD, "event-data.url"),
    }

    def message_id(self) -> str:
        # Mailgun's send API answers with the id in angle brackets; its webhooks
        # report the bare message-id header, which anymail brackets again.
        return f"<20261128080000.{uuid.uuid4().hex[:12]}@mg.papers.example>"

    def record_type(self, payload):
        return payload["event-data"]["event"]

    def full_event(self, kind, email, message_id, seq):
        timestamp = at(seq).timestamp()
        token = _token(str(seq))
        headers = {
            "to": email,
            "message-id": message_id.strip("<>"),
            "from": "Paperboy digest <digest@mg.papers.example>",
            "subject": "Your Paperboy digest",
        }
        data = {
            "id": _event_id(seq),
            "timestamp": timestamp,
            "recipient": email,
            "recipient-domain": email.rpartition("@")[2],
            "tags": ["digest"],
            "user-variables": {},
            "campaigns": [],
            "envelope": {
                "sender": "bounce@mg.papers.example",
                "transport": "smtp",
                "targets": email,
                "sending-ip": "209.61.154.250",
            },
            "message": {"headers": headers, "attachments": [], "size": 4521},
        }
        match kind:
            case "hard_bounce":
                data |= {
                    "event": "failed",
                    "log-level": "error",
                    "severity": "permanent",
                    "reason": "bounce",
                    "flags": {"is-routed": False, "is-authenticated": True, "is-test-mode": False},
                    "delivery-status": {
                        "attempt-no": 1,
                        "code": 550,
                        "message": "5.1.1 The email account that you tried to reach does not "
                        "exist.",
                        "description": "",
                        "mx-host": "mx.example.org",
                        "session-seconds": 0.4,
                    },
                }
            case "soft_bounce":
                data |= {
                    "event": "failed",
                    "log-level": "warn",
                    "severity": "temporary",
                    "reason": "generic",
                    "delivery-status": {
                        "attempt-no": 1,
                        "code": 452,
                        "message": "4.2.2 The email account that you tried to reach is over quota.",
                        "description": "",
                        "retry-seconds": 600,
                        "mx-host": "mx.example.org",
                    },
                }
            case "rejected":
                # Mailgun's "rejected" has no recipient field: anymail reads the To header.
                del data["recipient"], data["recipient-domain"]
                data |= {
                    "event": "rejected",
                    "log-level": "warn",
                    "reject": {
                        "reason": "Sandbox subdomains are for test purposes only",
                        "description": "",
                    },
                    "flags": {"is-test-mode": False},
                }
            case "complaint":
                data |= {"event": "complained", "log-level": "warn"}
            case "unsubscribe":
                data |= {
                    "event": "unsubscribed",
                    "log-level": "info",
                    "client-info": {"client-type": "browser", "user-agent": "Mozilla/5.0"},
                    "ip": "50.56.129.169",
                }
            case "delivered":
                data |= {
                    "event": "delivered",
                    "log-level": "info",
                    "delivery-status": {
                        "attempt-no": 1,
                        "code": 250,
                        "message": "OK",
                        "description": "",
                        "tls": True,
                        "mx-host": "mx.example.org",
                    },
                }
            case "opened":
                data |= {
                    "event": "opened",
                    "log-level": "info",
                    "ip": "50.56.129.169",
                    "client-info": {"client-type": "browser", "user-agent": "Mozilla/5.0"},
                    "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
                }
            case "clicked":
                data |= {
                    "event": "clicked",
                    "log-level": "info",
                    "url": "https://papers.example/digests/abc/",
                    "ip": "50.56.129.169",
                    "client-info": {"client-type": "browser", "user-agent": "Mozilla/5.0"},
                }
            case _:
                raise AssertionError(kind)
        stamp = str(int(timestamp))
        return {
            "signature": {
                "timestamp": stamp,
                "token": token,
                "signature": mailgun_signature(stamp, token),
            },
            "event-data": data,
        }


# --- Brevo --------------------------------------------------------------------------


class Brevo(ESP):
    """Basic auth only, and no event id: replays rely on the stable hash."""

    name = "Brevo"
    url = "/anymail/brevo/tracking/"
    soft_kinds = ("deferred", "deferred", "deferred")
    # kind: (Brevo's event, its reason)
    events = {
        "hard_bounce": ("hard_bounce", "550 5.1.1 <ada@example.org>: Recipient address rejected"),
        "soft_bounce": ("soft_bounce", "452 4.2.2 Mailbox full"),
        "deferred": ("deferred", "421 4.7.0 Try again later"),
        "rejected": ("blocked", "blocked : due to blacklist user"),
        "complaint": ("spam", None),
        "unsubscribe": ("unsubscribe", None),
        "delivered": ("delivered", "sent"),
        "opened": ("unique_opened", None),
        "clicked": ("click", None),
    }
    _fields = ("event", "email", "id", "date", "ts_event", "ts_epoch", "message-id", "reason")
    minimal_fields = dict.fromkeys((event for event, _ in events.values()), _fields) | {
        "click": (*_fields, "link")
    }

    def message_id(self) -> str:
        return f"<202611280800.{uuid.uuid4().int % 10**11}@smtp-relay.mailin.fr>"

    def record_type(self, payload):
        return payload["event"]

    def full_event(self, kind, email, message_id, seq):
        brevo_event, reason = self.events[kind]
        moment = at(seq)
        payload = {
            "event": brevo_event,
            "email": email,
            "id": 1234567,  # the webhook's id, the same for every event
            "date": moment.strftime("%Y-%m-%d %H:%M:%S"),
            "ts": int(moment.timestamp()),
            "message-id": message_id,
            "ts_event": int(moment.timestamp()),
            "subject": "Your Paperboy digest",
            "tag": "digest",
            "sending_ip": "185.41.28.109",
            "ts_epoch": int(moment.timestamp() * 1000),
            "template_id": 0,
        }
        if reason:
            payload["reason"] = reason
        if kind == "clicked":
            payload["link"] = "https://papers.example/digests/abc/"
        if kind in ("unsubscribe", "opened", "clicked"):
            payload["user_agent"] = "Mozilla/5.0"
        return payload


POSTMARK, MAILGUN, BREVO = Postmark(), Mailgun(), Brevo()
ESPS = [POSTMARK, MAILGUN, BREVO]


# --- inbound mail: the mailto: List-Unsubscribe -------------------------------------


def postmark_inbound(subject: str, *, minimal=False) -> dict:
    """What Postmark's inbound stream posts for a mail to the unsubscribe address.
    ``minimal``: the addresses, subject, ids, date, text and only the Message-ID header."""
    payload = {
        "FromName": "Someone",
        "MessageStream": "inbound",
        "From": INBOUND_SENDER,
        "FromFull": {"Email": INBOUND_SENDER, "Name": "Someone", "MailboxHash": ""},
        "To": INBOUND_ADDRESS,
        "ToFull": [{"Email": INBOUND_ADDRESS, "Name": "", "MailboxHash": ""}],
        "Cc": "",
        "CcFull": [],
        "Bcc": "",
        "BccFull": [],
        "OriginalRecipient": INBOUND_ADDRESS,
        "Subject": subject,
        "MessageID": "0b7c0a2e-6a3f-4f4e-9d5c-2f1f7f3c8e11",
        "ReplyTo": "",
        "MailboxHash": "",
        "Date": "Sat, 28 Nov 2026 09:00:00 +0000",
        "TextBody": "This message was sent by my mail client's unsubscribe button.",
        "HtmlBody": "",
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": [
            {"Name": "Return-Path", "Value": f"<{INBOUND_SENDER}>"},
            {"Name": "X-Spam-Status", "Value": "No"},
            {"Name": "X-Spam-Score", "Value": "-0.1"},
            {"Name": "Message-ID", "Value": INBOUND_MESSAGE_ID},
        ],
        "Attachments": [],
    }
    if not minimal:
        return payload
    kept = ("From", "FromFull", "To", "ToFull", "Subject", "MessageID", "Date", "TextBody")
    headers = [header for header in payload["Headers"] if header["Name"] == "Message-ID"]
    return _only(payload, kept) | {"Headers": headers, "Attachments": []}


def mailgun_inbound(subject: str, *, minimal=False) -> dict:
    """What a Mailgun route posts for the same mail: the parsed mail as a form, signed.
    ``minimal``: without the stripped text and the Date header."""
    timestamp, token = str(int(BASE.timestamp())), _token("inbound")
    headers = [
        ["From", f"Someone <{INBOUND_SENDER}>"],
        ["To", INBOUND_ADDRESS],
        ["Subject", subject],
        ["Message-Id", INBOUND_MESSAGE_ID],
    ]
    form = {
        "recipient": INBOUND_ADDRESS,
        "sender": INBOUND_SENDER,
        "from": f"Someone <{INBOUND_SENDER}>",
        "subject": subject,
        "body-plain": "unsubscribe",
        "stripped-text": "unsubscribe",
        "message-headers": json.dumps([*headers, ["Date", "Sat, 28 Nov 2026 09:00:00 +0000"]]),
        "timestamp": timestamp,
        "token": token,
        "signature": mailgun_signature(timestamp, token),
    }
    if minimal:
        del form["stripped-text"]
        form["message-headers"] = json.dumps(headers)
    return form
