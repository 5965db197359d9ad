"""The fault-injection harness itself: the SMTP server's faults and hooks, seen from a
plain smtplib client, a private Redis restarted, a worker killed with its pool."""

from __future__ import annotations

import smtplib
import socket
import threading

import pytest
import redis

from tests.support.processes import celery_env, is_running
from tests.support.smtp import running_smtp_server

SENDER = "sender@example.org"


def message(n: int) -> bytes:
    return f"From: {SENDER}\r\nSubject: message {n}\r\n\r\nHello.\r\n".encode()


def subjects(server) -> list[str]:
    return [m.parsed["Subject"] for m in server.messages]


class Client:
    """Sends one message at a time over one connection, reconnecting after the server
    hung up, and says what became of each."""

    def __init__(self, server, timeout: float = 10):
        self.server = server
        self.timeout = timeout
        self.smtp: smtplib.SMTP | None = None

    def send(self, to: str, n: int) -> str:
        if self.smtp is None:
            self.smtp = smtplib.SMTP(self.server.host, self.server.port, timeout=self.timeout)
            self.smtp.ehlo()
        smtp = self.smtp
        try:
            smtp.mail(SENDER)
            code, _ = smtp.rcpt(to)
        except smtplib.SMTPServerDisconnected:
            self.smtp = None
            return "dropped at rcpt"
        if code != 250:
            smtp.rset()
            return f"{code} at rcpt"
        try:
            code, _ = smtp.data(message(n))
        except smtplib.SMTPServerDisconnected:
            self.smtp = None
            return "dropped at data"
        if code == 421:
            self.close()
        return "sent" if code == 250 else str(code)

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None


def send_many(server, count: int, to: str = "reader@example.org") -> list[str]:
    client = Client(server)
    try:
        return [client.send(to, n) for n in range(count)]
    finally:
        client.close()


def test_transient_refusals_follow_the_seed_and_are_not_recorded(smtp_server):
    smtp_server.transient(rate=0.3, seed=7)
    first = send_many(smtp_server, 100)
    smtp_server.transient(rate=0.3, seed=7)
    again = send_many(smtp_server, 100)
    smtp_server.transient(rate=0.3, seed=8)
    other = send_many(smtp_server, 100)

    assert again == first
    assert other != first
    assert set(first) == {"sent", "421", "451"}
    assert 15 <= 100 - first.count("sent") <= 45
    outcomes = first + again + other
    assert smtp_server.refusals() == len(outcomes) - outcomes.count("sent")
    assert smtp_server.refusals(421) == outcomes.count("421")
    assert smtp_server.refusals(451) == outcomes.count("451")
    # Exactly the messages the client heard "250" for are recorded.
    accepted = [
        f"message {n}"
        for batch in (first, again, other)
        for n, o in enumerate(batch)
        if o == "sent"
    ]
    assert subjects(smtp_server) == accepted
    assert smtp_server.received_per_address() == {"reader@example.org": len(accepted)}


def test_a_421_closes_the_connection_and_a_451_does_not(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp_server.transient(rate=1, statuses=["451 4.3.0 Local error"])
        smtp.mail(SENDER)
        assert smtp.rcpt("reader@example.org")[0] == 250
        assert smtp.data(message(1)) == (451, b"4.3.0 Local error")
        assert smtp.noop()[0] == 250

        smtp_server.transient(rate=1, statuses=["421 4.3.0 Try again later"])
        smtp.mail(SENDER)
        assert smtp.rcpt("reader@example.org")[0] == 250
        assert smtp.data(message(2)) == (421, b"4.3.0 Try again later")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()

    assert smtp_server.messages == []


def test_drops_at_rcpt_lose_the_message_and_are_counted(smtp_server):
    rcpts = []
    smtp_server.on_rcpt(rcpts.append)
    smtp_server.drop(rate=0.4, stage="rcpt", seed=3)

    outcomes = send_many(smtp_server, 40)

    assert set(outcomes) == {"sent", "dropped at rcpt"}
    assert smtp_server.drops("rcpt") == smtp_server.drops() == outcomes.count("dropped at rcpt")
    assert subjects(smtp_server) == [f"message {n}" for n, o in enumerate(outcomes) if o == "sent"]
    # A dropped RCPT was never answered "250": the hook saw only the others.
    assert rcpts == list(range(1, outcomes.count("sent") + 1))


def test_drops_at_data_keep_the_message_the_client_never_heard_of(smtp_server):
    counts = []
    smtp_server.on_message(counts.append)
    smtp_server.drop(rate=0.4, stage="data", seed=3)

    outcomes = send_many(smtp_server, 40)

    assert set(outcomes) == {"sent", "dropped at data"}
    assert smtp_server.drops("data") == smtp_server.drops() == outcomes.count("dropped at data")
    assert subjects(smtp_server) == [f"message {n}" for n in range(40)]
    assert counts == list(range(1, 41))


def test_concurrent_clients_under_every_fault_are_accounted_for(smtp_server):
    """Four clients at once: what each heard adds up to what the server counted."""
    smtp_server.transient(rate=0.3, seed=1)
    smtp_server.drop(rate=0.05, stage="rcpt", seed=2)
    smtp_server.drop(rate=0.05, stage="data", seed=3)
    smtp_server.refuse_recipient("refused@example.org", "550 5.1.1 No such user")
    results: list[list[str]] = [[] for _ in range(4)]

    def run(index):
        client = Client(smtp_server)
        try:
            for n in range(60):
                to = "refused@example.org" if n % 20 == 0 else f"reader{index}@example.org"
                results[index].append(client.send(to, n))
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    outcomes = [o for result in results for o in result]
    assert len(outcomes) == 240
    assert outcomes.count("550 at rcpt") >= 1
    assert smtp_server.drops("rcpt") == outcomes.count("dropped at rcpt") > 0
    assert smtp_server.drops("data") == outcomes.count("dropped at data") > 0
    assert smtp_server.refusals() == outcomes.count("421") + outcomes.count("451") > 0
    received = smtp_server.received_per_address()
    assert received == {
        f"reader{i}@example.org": result.count("sent") + result.count("dropped at data")
        for i, result in enumerate(results)
    }
    assert len(smtp_server.messages) == received.total()


def test_a_message_left_hanging_times_out_its_client_and_blocks_no_other(smtp_server):
    smtp_server.hang_after_data("Stuck@Example.org")
    failure = []

    def send_stuck():
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=0.5) as smtp:
            try:
                smtp.sendmail(SENDER, ["stuck@example.org"], message(1))
            except smtplib.SMTPServerDisconnected as error:
                failure.append(error)

    stuck = threading.Thread(target=send_stuck)
    stuck.start()
    try:
        [hanging] = smtp_server.wait_for(1)
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
            assert smtp.sendmail(SENDER, ["other@example.org"], message(2)) == {}
    finally:
        stuck.join()

    assert hanging.rcpt_tos == ("stuck@example.org",)
    [error] = failure
    assert isinstance(error.__context__, TimeoutError)
    assert smtp_server.received_per_address() == {"stuck@example.org": 1, "other@example.org": 1}


def test_stopping_the_server_ends_a_session_left_hanging():
    failure = []
    with running_smtp_server() as server:
        server.hang_after_data("stuck@example.org")

        def send_stuck():
            # Far longer than the test: only the server's stop can end this wait.
            with smtplib.SMTP(server.host, server.port, timeout=60) as smtp:
                try:
                    smtp.sendmail(SENDER, ["stuck@example.org"], message(1))
                except smtplib.SMTPServerDisconnected as error:
                    failure.append(error)

        stuck = threading.Thread(target=send_stuck)
        stuck.start()
        server.wait_for(1)
    stuck.join(timeout=30)

    assert not stuck.is_alive()
    [error] = failure
    assert not isinstance(error.__context__, TimeoutError)


def nothing_to_read(sock: socket.socket) -> bool:
    """Whether the server has sent nothing not yet read (without waiting for it)."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    return False


def test_hooks_run_with_the_running_count_before_the_reply_is_sent(smtp_server):
    """The client does not read the reply until the hook has run, so a reply sent before
    the hook would be waiting in its socket."""
    smtp_server.refuse_recipient("refused@example.org", "550 5.1.1 No such user")
    # No timeout: a blocking socket, which the hook can peek at without waiting.
    smtp = smtplib.SMTP(smtp_server.host, smtp_server.port)
    seen = []
    ran = threading.Semaphore(0)

    def hook(stage):
        def record(count):
            seen.append((stage, count, len(smtp_server.messages), nothing_to_read(smtp.sock)))
            ran.release()

        return record

    smtp_server.on_rcpt(hook("rcpt"))
    smtp_server.on_message(hook("message"))
    try:
        smtp.ehlo()
        for n in (1, 2):
            smtp.mail(SENDER)
            assert smtp.rcpt("refused@example.org")[0] == 550
            smtp.putcmd("rcpt", "TO:<reader@example.org>")
            assert ran.acquire(timeout=10)
            smtp.sock.settimeout(10)
            assert smtp.getreply()[0] == 250
            smtp.sock.settimeout(None)
            smtp.putcmd("data")
            assert smtp.getreply()[0] == 354
            smtp.send(message(n) + b".\r\n")
            assert ran.acquire(timeout=10)
            smtp.sock.settimeout(10)
            assert smtp.getreply()[0] == 250
            smtp.sock.settimeout(None)
    finally:
        smtp.close()

    assert seen == [
        ("rcpt", 1, 0, True),
        ("message", 1, 1, True),
        ("rcpt", 2, 1, True),
        ("message", 2, 2, True),
    ]


def test_a_failing_hook_is_reported_to_the_test_and_the_reply_goes_out(smtp_server):
    smtp_server.on_message(lambda count: 1 / 0)

    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        assert smtp.sendmail(SENDER, ["reader@example.org"], message(1)) == {}
    with pytest.raises(AssertionError, match="callback") as failure:
        smtp_server.wait_for(2, timeout=30)

    assert isinstance(failure.value.__cause__, ZeroDivisionError)


def test_wait_until_blocks_on_the_per_address_count(smtp_server):
    with pytest.raises(AssertionError, match="did not hold"):
        smtp_server.wait_until(lambda received: received["reader@example.org"] >= 1, 0.1)

    def send():
        client = Client(smtp_server)
        try:
            for n, to in enumerate(["Reader@Example.org", "reader@example.org", "x@example.org"]):
                client.send(to, n)
        finally:
            client.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        received = smtp_server.wait_until(lambda received: received.total() >= 3, timeout=10)
    finally:
        sender.join()

    assert received == {"reader@example.org": 2, "x@example.org": 1}


def test_a_restarted_redis_comes_back_empty_on_the_same_port(redis_server):
    url, pid = redis_server.url, redis_server.pid
    before = redis.Redis.from_url(url)
    try:
        assert before.config_get("save") == {"save": ""}
        assert before.config_get("appendonly") == {"appendonly": "no"}
        before.set("queued", "task")
        assert before.get("queued") == b"task"
    finally:
        before.close()

    redis_server.restart()

    assert redis_server.url == url
    assert redis_server.pid != pid
    assert not is_running(pid)
    after = redis.Redis.from_url(url)
    try:
        assert after.get("queued") is None
        assert after.ping()
    finally:
        after.close()


@pytest.mark.celery_worker
def test_kill_takes_down_a_worker_with_its_pool_and_keeps_its_output(
    celery_cluster, redis_server, smtp_server, settings
):
    env = celery_env(settings.DATABASES["default"], smtp_server.url, redis_url=redis_server.url)
    [worker] = celery_cluster(env, workers=1, concurrency=2).workers
    worker.wait_for(" ready.", timeout=90)
    pool = worker.pool_pids()
    assert len(pool) == 2
    assert worker.group_pids() == sorted([worker.pid, *pool])

    worker.kill()

    assert worker.process.returncode == -9
    assert [pid for pid in [worker.pid, *pool] if is_running(pid)] == []
    assert worker.group_pids() == []
    assert " ready." in worker.printed
    with pytest.raises(AssertionError, match="ended"):
        worker.wait_for("never printed", timeout=60)
