"""The whole digest run at scale: population, scheduling pass, Celery workers, SMTP.

    .venv/bin/python -m bench.digests [--subscribers 100000] [--compare 10000] [--peer]
    .venv/bin/python -m bench.digests --subscribers 5000 --latency 20 [--rate 150]

Needs PostgreSQL and Redis (the machine's own, as in CI). It builds a fresh database
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/paperboy_bench), starts
a discard SMTP sink (bench.sink) and a Celery worker with four prefork processes (--workers) on
Redis, runs one scheduling pass for N due subscribers and waits until every digest is
out. In the same run it measures the ceiling (smtplib sending one pre-built digest over
one connection to the same sink), reads each worker's peak RSS from /proc, checks what
the sink received against the database, and prints a table. --compare runs a second,
smaller population to show the per-digest cost is flat in N; --peer runs
django-newsletter on the same sink (bench.peer).

--latency MS compares a mail server at once with one MS milliseconds away (the sink holds
each reply that long), over SMTP and through an ESP's HTTP API (bench.esp, answering as
Postmark after the same delay), with django-newsletter at MS beside them; --rate N adds
a run with PAPERBOY_SEND_RATE=N and reports how close to N the busiest second came.
"""

import argparse
import datetime as dt
import email
import email.policy
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/paperboy_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
QUEUE = "bench"
PAPERS = 500
INTEREST_TOPICS = 5000
CEILING_MESSAGES = 3000
# autovacuum's own pace: it wakes every minute (autovacuum_naptime) and analyzes a table
# once a tenth of it has changed, which a growing table passes at every wake-up.
ANALYZE_EVERY = 30
ARXIV_LINK = re.compile(r"arxiv\.org/abs/(\d{4}\.\d{4,5})")
BATCH_LINE = re.compile(
    r"sent batch: (?P<digests>\d+) digests .* compose (?P<compose>[\d.]+)s, "
    r"render (?P<render>[\d.]+)s, build (?P<build>[\d.]+)s, send (?P<send>[\d.]+)s, "
    r"record (?P<record>[\d.]+)s"
)


def _environment(
    database_url: str, redis_url: str, port: int, var_dir: str, esp: bool = False, rate: int = 0
) -> dict:
    mail = (
        {
            "EMAIL_URL": "anymail://postmark",
            "ANYMAIL_POSTMARK_SERVER_TOKEN": "bench",
            "ANYMAIL_POSTMARK_API_URL": f"http://127.0.0.1:{port}/",
        }
        if esp
        else {"EMAIL_URL": f"smtp://127.0.0.1:{port}"}
    )
    return {
        **os.environ,
        **mail,
        "PAPERBOY_SEND_RATE": str(rate),
        "DJANGO_SETTINGS_MODULE": "paperboy.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PAPERBOY_QUEUE": QUEUE,
        # The worker would import the default feeds as it starts, beside the digests.
        "PAPERBOY_FEED_URLS": "",
        "PAPERBOY_ARXIV_CATEGORIES": "",
        "PAPERBOY_VAR_DIR": var_dir,
        "SITE_URL": "https://papers.bench.example",
        "SECRET_KEY": "bench-" + "x" * 50,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "localhost",
        "LOG_LEVEL": "INFO",
    }


def _recreate_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        # It is dropped and created again: never anything but a benchmark's own.
        raise SystemExit(f"refusing to drop {name!r}: a benchmark database has 'bench' in its name")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling, since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Sink:
    """bench.sink (or, ``esp``, bench.esp) in its own process, spooling to a file, each
    reply held ``latency`` ms."""

    def __init__(self, folder: Path, latency: float = 0, esp: bool = False):
        folder.mkdir(parents=True, exist_ok=True)
        self.spool = folder / "spool.bin"
        self.times = folder / "times.txt"
        ready = folder / "sink.port"
        ready.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.esp" if esp else "bench.sink",
                *("--spool", str(self.spool), "--ready", str(ready)),
                *("--latency", str(latency), "--times", str(self.times)),
            ],
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the SMTP sink did not start")
            time.sleep(0.05)
        self.port = int(ready.read_text())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


class Child:
    """A server process the benchmark started: its CPU so far, and a clean stop."""

    process: subprocess.Popen

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children (pool workers) so far."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(_cpu_seconds(int(child)) for child in [pid, *children])

    def stop(self, timeout: float = 60) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Worker(Child):
    """One Celery worker with ``concurrency`` prefork processes, as an operator would run it."""

    def __init__(self, env: dict, log: Path, concurrency: int):
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "paperboy",
                "worker",
                "-Q",
                QUEUE,
                "-c",
                str(concurrency),
                "--pool",
                "prefork",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker did not start; see {log}")
            time.sleep(0.1)

    def peak_rss_mb(self) -> dict[str, float]:
        """VmHWM (peak resident set) of the worker and each pool process, in MB."""
        pids = {"main": self.process.pid}
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        for n, pid in enumerate(children.read_text().split(), 1):
            pids[f"process {n}"] = int(pid)
        peaks = {}
        for name, pid in pids.items():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[name] = int(line.split()[1]) / 1024
        return peaks


def _django(env: dict) -> None:
    os.environ.update(env)
    import django

    django.setup()


def build_population(subscribers: int, seed: int = 7) -> dict:
    """Fresh schema, topics, papers (scored: the timed part) and due subscribers."""
    from django.core.management import call_command
    from django.utils import timezone

    from bench import population
    from papers import semantic
    from papers.matching import score_papers
    from papers.models import Paper, Topic

    call_command("migrate", verbosity=0)
    rng = random.Random(seed)
    now = timezone.now()
    papers = population.papers(PAPERS, rng, now - dt.timedelta(hours=1))
    texts = [f"{p.title} {p.abstract}" for p in papers]
    topics = population.curated_topics(papers)
    population.interest_topics(INTEREST_TOPICS, texts, rng)
    papers = Paper.objects.bulk_create(papers)
    # As an import does: embedded first, then scored (words and meaning). The interest
    # topics are embedded here too, as sign-ups would have, so that the worker finds
    # nothing to re-embed while it sends.
    started = time.perf_counter()
    semantic.embed_papers(papers)
    embedding = time.perf_counter() - started
    started = time.perf_counter()
    background = semantic.Background.load(semantic.embeddings.current_name())
    for topic in Topic.objects.order_by("pk").iterator():
        semantic.embed_topic(topic, background)
    topic_embedding = time.perf_counter() - started
    started = time.perf_counter()
    score_papers(papers)
    scoring = time.perf_counter() - started
    started = time.perf_counter()
    population.subscribers(subscribers, topics, rng, due=now - dt.timedelta(minutes=1))
    return {
        "embedding": embedding,
        "topic_embedding": topic_embedding,
        "scoring": scoring,
        "population": time.perf_counter() - started,
    }


def measure_ceiling(port: int) -> tuple[float, int]:
    """smtplib sending the bytes of one typical digest, pre-built, over one connection."""
    import smtplib

    from django.utils import timezone

    from digest import previews
    from subscriptions.models import Subscriber

    subscriber = Subscriber.objects.order_by("pk").first()
    data = previews.preview_bytes(subscriber, timezone.now())
    client = smtplib.SMTP("127.0.0.1", port)
    client.ehlo()
    started = time.perf_counter()
    for n in range(CEILING_MESSAGES):
        client.sendmail("ceiling@bench.invalid", [f"ceiling{n}@bench.invalid"], data)
    elapsed = time.perf_counter() - started
    client.quit()
    return CEILING_MESSAGES / elapsed, len(data)


def _autovacuum_on() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return cursor.fetchone()[0] == "on"


def wait_for_digests(total: int, stall: float = 120) -> tuple[float, dict]:
    """Poll the outcome counts with a progress bar until every digest is settled.

    The digest tables grow from empty to N and 8N rows during the run. Where the
    server's autovacuum is off (as on these machines), nothing would refresh their
    statistics, and the planner, knowing nothing of the ledger, reads all of it for every
    batch instead of using its index: at 100,000, 1,775 sequential scans of up to 800,000
    rows. Then this analyzes them every ANALYZE_EVERY seconds, as autovacuum would."""
    from django.db import connection
    from django.db.models import Count
    from tqdm import tqdm

    from digest.models import Digest, DigestItem

    analyze = not _autovacuum_on()
    if analyze:
        print(
            f"autovacuum is off on this server: the bench analyzes the digest tables every "
            f"{ANALYZE_EVERY} s",
            file=sys.stderr,
        )
    done, last_change, last_done = {}, time.monotonic(), 0
    analyzed = time.monotonic()
    with tqdm(total=total, unit="digest", file=sys.stderr, smoothing=0.1) as bar:
        while True:
            if analyze and time.monotonic() - analyzed >= ANALYZE_EVERY:
                with connection.cursor() as cursor:
                    cursor.execute(f"ANALYZE {Digest._meta.db_table}, {DigestItem._meta.db_table}")
                analyzed = time.monotonic()
            done = dict(
                Digest.objects.exclude(status__in=["claimed", "sending"])
                .values_list("status")
                .annotate(n=Count("pk"))
            )
            count = sum(done.values())
            bar.update(count - bar.n)
            if count >= total:
                return time.monotonic(), done
            if count != last_done:
                last_done, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > stall:
                raise RuntimeError(f"no progress for {stall:.0f} s at {count}/{total}: {done}")
            # Once a second: counting 100,000 digests is not free for the database.
            time.sleep(1)


def _check_chunk(args):
    spool, entries = args
    results = []
    with open(spool, "rb") as file:
        for offset, size, rcpts in entries:
            file.seek(offset)
            message = email.message_from_bytes(file.read(size), policy=email.policy.default)
            text = message.get_body(("plain",)).get_content()
            results.append(
                (
                    tuple(rcpts),
                    message["To"],
                    message["Message-ID"].strip(),
                    tuple(sorted(set(ARXIV_LINK.findall(text)))),
                )
            )
    return results


def check_outcome(spool: Path, total: int) -> list[str]:
    """Every subscriber exactly once, to their address, with their ledger's papers."""
    from bench.sink import spool_index
    from digest.models import Digest, DigestItem

    entries = [entry for entry in spool_index(spool) if not entry[2][0].endswith("@bench.invalid")]
    chunks = [(spool, entries[start : start + 2000]) for start in range(0, len(entries), 2000)]
    with multiprocessing.Pool(2) as pool:
        received = [row for chunk in pool.map(_check_chunk, chunks) for row in chunk]

    problems = []
    if len(received) != total:
        problems.append(f"the sink received {len(received)} digests, expected {total}")
    per_address = Counter(rcpts for rcpts, *_ in received)
    twice = [rcpts for rcpts, n in per_address.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} addresses got more than one digest, e.g. {twice[:3]}")
    digests = {
        message_id: (pk, email_address)
        for pk, message_id, email_address in Digest.objects.filter(status="sent").values_list(
            "pk", "message_id", "subscriber__email"
        )
    }
    papers = defaultdict(list)
    for digest_id, arxiv_id in DigestItem.objects.values_list("digest_id", "paper__arxiv_id"):
        papers[digest_id].append(arxiv_id)
    wrong = 0
    for rcpts, to, message_id, arxiv_ids in received:
        digest = digests.get(message_id)
        if (
            digest is None
            or rcpts != (digest[1],)
            or to != digest[1]
            or arxiv_ids != tuple(sorted(papers[digest[0]]))
        ):
            wrong += 1
    if wrong:
        problems.append(f"{wrong} messages do not match their digest (address or papers)")
    if len(digests) != total:
        problems.append(f"{len(digests)} digests are marked sent, expected {total}")
    return problems


def stage_times(log: Path) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for match in BATCH_LINE.finditer(log.read_text(errors="replace")):
        for name, value in match.groupdict().items():
            totals[name] += float(value)
    return totals


def run(
    subscribers: int,
    workers: int,
    folder: Path,
    database_url: str,
    redis_url: str,
    latency: float = 0,
    esp: bool = False,
    rate: int = 0,
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    sink = Sink(folder, latency, esp)
    env = _environment(database_url, redis_url, sink.port, str(folder / "var"), esp, rate)
    worker = None
    try:
        _recreate_database(database_url)
        _django(env)
        import redis
        from django.db import connection

        redis.Redis.from_url(redis_url).flushdb()
        connection.close()
        print(
            f"Building {subscribers:,} subscribers, {PAPERS} papers, 50 + {INTEREST_TOPICS:,} "
            "topics…",
            file=sys.stderr,
        )
        figures = build_population(subscribers)
        # The ceiling is one connection's smtplib, message after message: at a latency it
        # measures the latency.
        figures["ceiling"], figures["message_bytes"] = (
            measure_ceiling(sink.port) if not (latency or esp) else (None, None)
        )
        worker = Worker(env, folder / "worker.log", workers)

        from digest.models import SchedulingPass
        from digest.tasks import schedule_digests

        started = time.monotonic()
        busy, worker_cpu, sink_cpu = (
            _machine_busy_seconds(),
            worker.cpu_seconds(),
            _cpu_seconds(sink.process.pid),
        )
        schedule_digests.apply_async(queue=QUEUE)
        finished, outcome = wait_for_digests(subscribers)
        figures["cpu"] = {
            "workers": worker.cpu_seconds() - worker_cpu,
            "sink": _cpu_seconds(sink.process.pid) - sink_cpu,
            "machine": _machine_busy_seconds() - busy,
        }
        figures["elapsed"] = finished - started
        figures["rate"] = subscribers / figures["elapsed"]
        figures["outcome"] = outcome
        figures["rss"] = worker.peak_rss_mb()
        scheduling = SchedulingPass.objects.get()
        figures["claim"] = (scheduling.finished_at - scheduling.started_at).total_seconds()
    finally:
        if worker is not None:
            worker.stop()
        sink.stop()
    figures["stages"] = stage_times(folder / "worker.log")
    figures["problems"] = check_outcome(sink.spool, subscribers)
    figures["busiest_second"] = busiest_second(sink.times)
    return figures


def busiest_second(times: Path, window: int = 5) -> float:
    """The most messages per second the sink received over ``window`` seconds of the
    clock running: a message counted against the cap in one second may reach the sink
    in the next, so single seconds swing both ways around it."""
    counts = Counter(int(float(line)) for line in times.read_text().split())
    if not counts:
        return 0.0
    seconds = range(min(counts), max(counts) + 1)
    totals = [sum(counts[s] for s in seconds[i : i + window]) for i in range(len(seconds))]
    return max(totals) / min(window, len(seconds))


def report(runs: dict[int, dict], peer: float | None) -> str:
    lines = []
    for n, figures in runs.items():
        stages = figures["stages"]
        per_digest = {
            name: 1000 * stages.get(name, 0) / n
            for name in ("compose", "render", "build", "send", "record")
        }
        lines += [
            f"## {n:,} subscribers",
            "",
            "| figure | value |",
            "|---|---|",
            f"| end to end | {figures['rate']:.0f} digests/s ({figures['elapsed']:.1f} s) |",
            f"| ceiling (smtplib, pre-built bytes, one connection) | {figures['ceiling']:.0f} "
            f"messages/s ({figures['message_bytes']:,} bytes each) |",
            f"| ratio to the ceiling | {figures['rate'] / figures['ceiling']:.2f}x |",
            f"| claim (scheduling pass) | {figures['claim']:.1f} s |",
            *(
                f"| {name}, per digest (wall time in the workers) | {ms:.2f} ms |"
                for name, ms in per_digest.items()
            ),
            *(
                f"| CPU per digest, {name} | {1000 * seconds / n:.2f} ms |"
                for name, seconds in figures["cpu"].items()
            ),
            *(f"| peak RSS, worker {name} | {mb:.0f} MB |" for name, mb in figures["rss"].items()),
            f"| embedding {PAPERS} papers (one process, one thread) "
            f"| {figures['embedding']:.1f} s |",
            f"| embedding {50 + INTEREST_TOPICS:,} topics | {figures['topic_embedding']:.1f} s |",
            f"| scoring {PAPERS} papers x {50 + INTEREST_TOPICS:,} topics "
            f"| {figures['scoring']:.1f} s |",
            f"| outcome | {figures['outcome']} |",
            f"| checks | {'; '.join(figures['problems']) or 'all passed'} |",
            "",
        ]
    if len(runs) == 2:
        (big, big_figures), (small, small_figures) = sorted(runs.items(), reverse=True)
        lines.append(
            f"Rate at {big:,} / rate at {small:,}: "
            f"{big_figures['rate'] / small_figures['rate']:.2f} (flat is 1.0)."
        )
    if peer:
        biggest = runs[max(runs)]
        lines.append(
            f"django-newsletter: {peer:.0f} messages/s; Paperboy end to end is "
            f"{biggest['rate'] / peer:.1f}x that."
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--compare", type=int, help="also run this many, for the flatness check")
    parser.add_argument(
        "--workers", type=int, default=4, help="prefork processes (docker-compose.yml's)"
    )
    parser.add_argument("--peer", action="store_true", help="also run django-newsletter")
    parser.add_argument("--peer-subscribers", type=int, default=10_000)
    parser.add_argument("--folder", type=Path, help="keep logs and the spool here")
    parser.add_argument(
        "--latency", type=float, help="compare 0 ms with a mail server and ESP this far away"
    )
    parser.add_argument("--rate", type=int, help="with --latency: also run with this cap (/s)")
    args = parser.parse_args(argv)
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="paperboy-bench-"))
    if args.latency:
        return latency_main(args, folder, database_url, redis_url)
    runs = {}
    sizes = [args.subscribers] + ([args.compare] if args.compare else [])
    for size in sizes:
        # Each size in its own process: a fresh Django, database and worker.
        runs[size] = _in_subprocess(size, args.workers, folder / str(size), database_url, redis_url)
    peer = None
    if args.peer:
        from bench import peer as peer_module

        peer = peer_module.run(args.peer_subscribers, folder / "peer")
    print(report(runs, peer))
    return 1 if any(figures["problems"] for figures in runs.values()) else 0


LATENCY_RUNS = [("SMTP", False), ("ESP API (anymail, Postmark)", True)]


def latency_main(args, folder: Path, database_url: str, redis_url: str) -> int:
    """0 ms and ``args.latency`` ms side by side, over SMTP and an ESP's API, and
    django-newsletter at ``args.latency`` ms on the same kind of sink."""
    n, runs = args.subscribers, {}
    for name, esp in LATENCY_RUNS:
        for latency in (0, args.latency):
            where = folder / f"{'esp' if esp else 'smtp'}-{latency:g}ms"
            runs[name, latency] = _in_subprocess(
                n, args.workers, where, database_url, redis_url, latency, esp
            )
    capped = None
    if args.rate:
        where = folder / f"smtp-{args.latency:g}ms-rate{args.rate}"
        capped = _in_subprocess(
            n, args.workers, where, database_url, redis_url, args.latency, False, args.rate
        )
    from bench import peer as peer_module

    sink = Sink(folder / "peer-sink", args.latency)
    try:
        peer = peer_module.measure(args.peer_subscribers, folder / "peer", sink.port)["rate"]
    finally:
        sink.stop()
    print(latency_report(n, args.latency, runs, peer, args.rate, capped))
    every = [*runs.values(), *([capped] if capped else [])]
    return 1 if any(figures["problems"] for figures in every) else 0


def latency_report(
    n: int, latency: float, runs: dict, peer: float, rate: int | None, capped: dict | None
) -> str:
    concurrency = os.environ.get("PAPERBOY_SEND_CONCURRENCY", "4 (the default)")
    lines = [
        f"## {n:,} subscribers, each reply at once and after {latency:g} ms",
        "",
        f"4 worker processes, {concurrency} messages in flight each.",
        "",
        f"| path | at once | {latency:g} ms | {latency:g} ms / at once | peak RSS, worker |",
        "|---|---|---|---|---|",
    ]
    for name, _ in LATENCY_RUNS:
        fast, slow = runs[name, 0], runs[name, latency]
        rss = max(max(fast["rss"].values()), max(slow["rss"].values()))
        lines.append(
            f"| {name} | {fast['rate']:.0f} digests/s | {slow['rate']:.0f} digests/s "
            f"| {slow['rate'] / fast['rate']:.2f}x | {rss:.0f} MB |"
        )
    lines.append(
        f"| django-newsletter, SMTP | | {peer:.1f} messages/s | SMTP at {latency:g} ms is "
        f"{runs[LATENCY_RUNS[0][0], latency]['rate'] / peer:.0f}x it | |"
    )
    if capped:
        lines += [
            "",
            f"With PAPERBOY_SEND_RATE={rate} (SMTP, {latency:g} ms): {capped['rate']:.0f} "
            f"digests/s end to end; the busiest five seconds at the sink had "
            f"{capped['busiest_second']:.1f} messages a second "
            f"({capped['busiest_second'] / rate - 1:+.1%} of the cap).",
        ]
    problems = [
        f"{key}: {'; '.join(figures['problems'])}"
        for key, figures in [*runs.items(), *([("capped", capped)] if capped else [])]
        if figures["problems"]
    ]
    lines += ["", f"Checks: {'; '.join(problems) or 'all passed'}."]
    return "\n".join(lines)


def _child(queue, *args):
    try:
        queue.put(run(*args))
    except BaseException as exc:
        queue.put(exc)
        raise


def _in_subprocess(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, *args))
    process.start()
    result = queue.get()
    process.join()
    if isinstance(result, BaseException):
        raise SystemExit(f"benchmark run failed: {result!r}")
    return result


if __name__ == "__main__":
    sys.exit(main())
