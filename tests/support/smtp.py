"""A real SMTP server on loopback (aiosmtpd), with fault injection.

Fixtures:

- ``smtp_server``: a running server; see :class:`SMTPServer` for what it offers.
- ``smtp_mailer``: the same server, made Django's default mailer for the test.

Every test gets its own server on its own port, so recorded messages and injected
faults never leak from one test to the next.

Random faults (``transient``, ``drop``) draw from their own ``random.Random(seed)``, once
per RCPT TO or per message, whatever else happens to it: the sequence of decisions
depends on the seed alone. Which message meets which decision still depends on the
order in which concurrent clients reach the server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import random
import re
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal, NoReturn

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
_STATUS = re.compile(r"^[45]\d\d[ -]")
_TRANSIENT_STATUS = re.compile(r"^4\d\d[ -]")
TRANSIENT_STATUSES = ("421 4.3.0 Try again later", "451 4.3.0 Local error")
Stage = Literal["rcpt", "data"]
STAGES: tuple[Stage, ...] = ("rcpt", "data")


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted, exactly as it came over the wire."""

    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]

    @property
    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


def _checked_status(status: str, pattern: re.Pattern = _STATUS) -> str:
    if not pattern.match(status):
        raise ValueError(f"expected an SMTP error reply such as '421 4.3.0 ...', got {status!r}")
    return status


def _checked_rate(rate: float) -> float:
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be between 0 and 1, got {rate}")
    return rate


@dataclass
class _RandomFault:
    rate: float
    rng: random.Random
    statuses: tuple[str, ...] = ()

    def draw(self) -> bool:
        return self.rng.random() < self.rate

    def draw_status(self) -> str | None:
        return self.rng.choice(self.statuses) if self.draw() else None


async def _hang_up(server, reply: str | None = None) -> NoReturn:
    """Close the connection, after ``reply`` or abruptly (no reply at all)."""
    if reply is not None:
        await server.push(reply)
    if server.transport is not None:
        if reply is None:
            server.transport.abort()
        else:
            server.transport.close()
    # Never resolved: losing the connection cancels the session, this coroutine with it,
    # so aiosmtpd never gets to send a reply of its own.
    await asyncio.get_running_loop().create_future()


@dataclass
class _Handler:
    """aiosmtpd handler; its hooks run on the controller's event-loop thread."""

    condition: threading.Condition = field(default_factory=threading.Condition)
    messages: list[ReceivedMessage] = field(default_factory=list)
    # Accepted messages per recipient (case-folded), kept as they arrive: waiters look at
    # it after every message, and counting thousands of messages each time would not
    # keep up.
    received: Counter[str] = field(default_factory=Counter)
    # One status per message still to be refused at DATA, oldest first.
    data_failures: deque[str] = field(default_factory=deque)
    # Recipient (case-folded) -> status answered to its RCPT TO.
    refused_recipients: dict[str, str] = field(default_factory=dict)
    hung_recipients: set[str] = field(default_factory=set)
    transient: _RandomFault | None = None
    drop_plans: dict[str, _RandomFault] = field(default_factory=dict)
    rcpts_accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    rcpt_hooks: list[Callable[[int], object]] = field(default_factory=list)
    message_hooks: list[Callable[[int], object]] = field(default_factory=list)
    hook_errors: list[BaseException] = field(default_factory=list)
    hook_errors_reported: int = 0
    # Seconds each reply to MAIL FROM, RCPT TO and the end of DATA waits (``slow``).
    reply_delay: float = 0
    # Offered in the EHLO reply, as Postfix and Exim do; aiosmtpd reads commands in turn
    # however they came.
    pipelining: bool = True
    # Sessions between MAIL FROM and the end of DATA, and the most there were at once.
    in_transaction: set[int] = field(default_factory=set)
    peak_in_transaction: int = 0

    async def _delay(self) -> None:
        with self.condition:
            delay = self.reply_delay
        if delay:
            # The server's own latency: other sessions go on meanwhile.
            await asyncio.sleep(delay)

    def _draw_drop(self, stage: Stage) -> bool:
        plan = self.drop_plans.get(stage)
        return plan is not None and plan.draw()

    def _run_hooks(self, hooks: list[Callable[[int], object]], count: int) -> None:
        for hook in hooks:
            try:
                hook(count)
            except BaseException as error:
                # Raised here, it would only reach aiosmtpd, which answers "500" and
                # carries on: the test would never hear of it.
                with self.condition:
                    self.hook_errors.append(error)
                    self.condition.notify_all()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.condition:
            pipelining = self.pipelining
        if pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    def _transaction(self, session, started: bool) -> None:
        with self.condition:
            if started:
                self.in_transaction.add(id(session))
                self.peak_in_transaction = max(self.peak_in_transaction, len(self.in_transaction))
            else:
                self.in_transaction.discard(id(session))

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self._transaction(session, started=True)
        await self._delay()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        hooks, count = [], 0
        with self.condition:
            drop = self._draw_drop("rcpt")
            status = self.refused_recipients.get(address.casefold())
            if drop:
                self.dropped["rcpt"] += 1
                self.condition.notify_all()
            elif status is None:
                self.rcpts_accepted += 1
                count = self.rcpts_accepted
                hooks = list(self.rcpt_hooks)
        if drop:
            await _hang_up(server)
        if status is not None:
            await self._delay()
            return status
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        self._run_hooks(hooks, count)
        await self._delay()
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = ReceivedMessage(
            raw=bytes(raw), mail_from=envelope.mail_from, rcpt_tos=tuple(envelope.rcpt_tos)
        )
        recipients = [address.casefold() for address in message.rcpt_tos]
        hooks, count = [], 0
        with self.condition:
            # Each plan draws for every message, whatever becomes of it, so that its
            # decisions depend on its seed alone.
            transient = self.transient.draw_status() if self.transient else None
            drop = self._draw_drop("data")
            refusal = None
            if self.data_failures:
                outcome, refusal = "refuse", self.data_failures.popleft()
            elif any(address in self.hung_recipients for address in recipients):
                outcome = "hang"
            elif drop:
                outcome = "drop"
            elif transient is not None:
                outcome, refusal = "refuse", transient
            else:
                outcome = "accept"
            if outcome == "refuse":
                self.refused[refusal] += 1
            else:
                self.messages.append(message)
                self.received.update(recipients)
                if outcome == "drop":
                    self.dropped["data"] += 1
                count = len(self.messages)
                hooks = list(self.message_hooks)
            self.condition.notify_all()
        if refusal is not None:
            await self._delay()
            if refusal.startswith("421"):
                # A real MTA says 421 when it is about to close the connection.
                await _hang_up(server, refusal)
            return refusal
        self._run_hooks(hooks, count)
        await self._delay()
        if outcome == "hang":
            # Only losing the connection (the client giving up, or the server stopping)
            # ends this wait; the other sessions carry on meanwhile.
            await asyncio.get_running_loop().create_future()
        if outcome == "drop":
            await _hang_up(server)
        self._transaction(session, started=False)
        return "250 Message accepted for delivery"


class SMTPServer:
    """A running SMTP server; the fixture's value.

    ``host``/``port`` say where it listens; ``messages`` is a snapshot of the accepted
    messages (``ReceivedMessage``: ``.raw``, ``.mail_from``, ``.rcpt_tos``, ``.parsed``).

    At the end of DATA, the first of these that applies decides: ``fail_next``, then
    ``hang_after_data``, then a ``drop`` at "data", then ``transient``; otherwise "250".
    At RCPT TO: a ``drop`` at "rcpt", then ``refuse_recipient``; otherwise "250".
    """

    def __init__(self, host: str, port: int, handler: _Handler):
        self.host = host
        self.port = port
        self._handler = handler

    @property
    def url(self) -> str:
        """The EMAIL_URL that delivers here."""
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._handler.condition:
            return list(self._handler.messages)

    def fail_next(self, n: int, status: str) -> None:
        """Answer ``status`` (e.g. "421 4.3.0 Try again later") to the DATA of the next
        ``n`` messages; those messages are not recorded. After a 421 the server closes
        the connection."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        status = _checked_status(status)
        with self._handler.condition:
            self._handler.data_failures.extend([status] * n)

    def refuse_recipient(self, address: str, status: str) -> None:
        """Answer ``status`` (e.g. "550 5.1.1 No such user") to every RCPT TO for
        ``address`` (compared ignoring case), for as long as this server runs."""
        status = _checked_status(status)
        with self._handler.condition:
            self._handler.refused_recipients[address.casefold()] = status

    def accept_recipient(self, address: str) -> None:
        """Take back ``refuse_recipient``: from now on ``address`` is accepted again."""
        with self._handler.condition:
            self._handler.refused_recipients.pop(address.casefold(), None)

    def transient(
        self,
        rate: float = 0.3,
        statuses: Sequence[str] = TRANSIENT_STATUSES,
        *,
        seed: int = 0,
    ) -> None:
        """From now on, answer each message's end of DATA, with probability ``rate``,
        with one of ``statuses`` (4xx) and do not record it; after a 421 the server
        closes the connection. Replaces any earlier ``transient`` plan; rate=0 ends it."""
        statuses = tuple(_checked_status(s, _TRANSIENT_STATUS) for s in statuses)
        if not statuses:
            raise ValueError("statuses must name at least one reply")
        # A reproducible plan, not a secret.
        plan = _RandomFault(_checked_rate(rate), random.Random(seed), statuses)  # noqa: S311
        with self._handler.condition:
            self._handler.transient = plan

    def drop(self, rate: float = 0.05, stage: Stage = "rcpt", *, seed: int = 0) -> None:
        """From now on, with probability ``rate``, close the connection without a reply:
        at RCPT TO ("rcpt": the message never arrives) or once the whole message is in
        ("data": it is recorded, the client never hears back). Replaces any earlier plan
        for that stage; rate=0 ends it."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        plan = _RandomFault(_checked_rate(rate), random.Random(seed))  # noqa: S311
        with self._handler.condition:
            self._handler.drop_plans[stage] = plan

    def slow(self, seconds: float) -> None:
        """From now on, wait ``seconds`` before answering each MAIL FROM, RCPT TO and
        end of DATA (after the ``on_rcpt``/``on_message`` callbacks), as a throttled or
        distant relay does; 0 ends it."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        with self._handler.condition:
            self._handler.reply_delay = seconds

    def offer_pipelining(self, offered: bool) -> None:
        """Whether EHLO offers PIPELINING (RFC 2920); it does unless told otherwise."""
        with self._handler.condition:
            self._handler.pipelining = offered

    @property
    def peak_in_transaction(self) -> int:
        """The most sessions that were between MAIL FROM and the end of DATA at once."""
        with self._handler.condition:
            return self._handler.peak_in_transaction

    def hang_after_data(self, address: str) -> None:
        """Record every message to ``address`` (ignoring case), then never answer its
        DATA: the session waits until the client goes away or the server stops."""
        with self._handler.condition:
            self._handler.hung_recipients.add(address.casefold())

    def on_rcpt(self, callback: Callable[[int], object]) -> None:
        """Call ``callback(n)`` at each RCPT TO about to be answered "250", ``n`` being
        how many have been so far (this one included), before the reply is sent.

        Callbacks run on the server's event-loop thread, in the order registered: while
        one runs, no session makes progress. An exception is reported by ``wait_for``,
        ``wait_until`` and at the end of the test, and the reply goes out as planned."""
        with self._handler.condition:
            self._handler.rcpt_hooks.append(callback)

    def on_message(self, callback: Callable[[int], object]) -> None:
        """Call ``callback(n)`` for each recorded message, ``n`` being ``len(messages)``
        with this one included, after it is recorded and before any reply is sent
        (also for a message that is then dropped or left hanging). As ``on_rcpt``."""
        with self._handler.condition:
            self._handler.message_hooks.append(callback)

    def received_per_address(self) -> Counter[str]:
        """How many recorded messages each recipient (case-folded) got."""
        with self._handler.condition:
            return Counter(self._handler.received)

    def refusals(self, code: int | None = None) -> int:
        """How many messages were refused at the end of DATA (``fail_next`` and
        ``transient``), or only those answered with reply code ``code``."""
        with self._handler.condition:
            return sum(
                n
                for status, n in self._handler.refused.items()
                if code is None or status.startswith(str(code))
            )

    def drops(self, stage: Stage | None = None) -> int:
        """How many connections ``drop`` closed at ``stage`` ("rcpt" or "data"), or at
        both."""
        with self._handler.condition:
            if stage is None:
                return self._handler.dropped.total()
            return self._handler.dropped[stage]

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages have arrived; return them all."""
        arrived = self._wait(lambda: len(self._handler.messages) >= count, timeout)
        messages = self.messages
        if not arrived:
            got = [(m.mail_from, list(m.rcpt_tos), m.parsed["Subject"]) for m in messages]
            raise AssertionError(
                f"expected at least {count} message(s) at {self.url} "
                f"within {timeout}s, {len(messages)} arrived: {got}"
            )
        return messages

    def wait_until(
        self, predicate: Callable[[Mapping[str, int]], bool], timeout: float = 10
    ) -> Counter[str]:
        """Block until ``predicate(received)`` holds, ``received`` being the live count of
        recorded messages per recipient (read it during the call only: the server goes
        on updating it); return a snapshot of it."""
        handler = self._handler
        if not self._wait(lambda: predicate(handler.received), timeout):
            with handler.condition:
                raise AssertionError(
                    f"the condition did not hold within {timeout}s at {self.url}: "
                    f"{len(handler.messages)} message(s) recorded for "
                    f"{len(handler.received)} address(es), {handler.refused.total()} "
                    f"refused, drops {dict(handler.dropped)}"
                )
        return self.received_per_address()

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        handler = self._handler
        with handler.condition:
            finished = handler.condition.wait_for(
                lambda: len(handler.hook_errors) > handler.hook_errors_reported or done(),
                timeout=timeout,
            )
        self.raise_hook_errors()
        return finished

    def raise_hook_errors(self) -> None:
        """Raise the first exception an ``on_rcpt``/``on_message`` callback raised since
        the last call, if any."""
        with self._handler.condition:
            errors = self._handler.hook_errors[self._handler.hook_errors_reported :]
            self._handler.hook_errors_reported = len(self._handler.hook_errors)
        if errors:
            raise AssertionError(
                f"{len(errors)} SMTP server callback(s) raised, first: {errors[0]!r}"
            ) from errors[0]

    def mailer_settings(self) -> dict:
        """One entry of Django's MAILERS setting that delivers to this server."""
        return {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": self.host,
                "port": self.port,
                "use_tls": False,
                "use_ssl": False,
                "timeout": 10,
            },
        }

    def __repr__(self) -> str:
        return f"<SMTPServer {self.url}>"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def running_smtp_server() -> Iterator[SMTPServer]:
    """A server for the duration of the block; stopping it ends every session, hanging
    ones included."""
    handler = _Handler()
    # aiosmtpd logs every command at INFO; keep its warnings and errors only.
    log = logging.getLogger("mail.log")
    level = log.level
    log.setLevel(logging.WARNING)
    # server_hostname: without it aiosmtpd asks socket.getfqdn(), a DNS look-up.
    controller = Controller(handler, hostname=HOST, port=_free_port(), server_hostname="localhost")
    controller.start()
    try:
        yield SMTPServer(HOST, controller.port, handler)
    finally:
        controller.stop()
        log.setLevel(level)


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback that records what it accepts."""
    with running_smtp_server() as server:
        yield server
    # A callback's failure no wait reported would otherwise pass unnoticed.
    server.raise_hook_errors()


@pytest.fixture
def smtp_mailer(settings, smtp_server):
    """``smtp_server``, made Django's default mailer for this test."""
    settings.MAILERS = {"default": smtp_server.mailer_settings()}
    return smtp_server
