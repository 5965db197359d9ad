"""Signup POST throughput and p99 latency under gunicorn, against a minimal Django view.

    .venv/bin/python -m bench.signup [--duration 20] [--connections 8]
    .venv/bin/python -m bench.signup --profile 300

Runs as production does: PostgreSQL (BENCH_SIGNUP_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/paperboy_bench_signup, dropped and created again,
migrated, with the sample papers imported so that a new interest has recent papers to
be scored against), Redis (BENCH_SIGNUP_REDIS_URL, default db 13, flushed) as cache and
Celery broker, DEBUG=false, and gunicorn with 2 sync workers on loopback. The rate
limits are raised through their environment variables: every request comes from
127.0.0.1, and the per-IP limit would otherwise answer 429 after 20.

wrk (Debian's package; installed with apt-get when missing and running as root) runs
for the same duration and connections against (a) GET /bench/minimal, a view that
returns "ok" through the whole middleware stack (bench.settings, bench.urls), (b) POST
/bench/one-insert, the same form posted to a view that writes one subscriber row and
redirects (the floor for any sign-up that stores something), and (c) POST /subscribe/
with bench/signup.lua: a unique address per request, two curated topics, and in one
request in --interest-every a free-text interest that creates a topic of its own (the
worst case: creating a topic rescores the last 30 days of papers).
One CSRF cookie and token, fetched once, serve every request.

The confirmation email is only enqueued: it goes to a Celery queue of the bench's own
on Redis and no worker runs, so the figures are the web tier's alone. After the run
the bench checks that no acknowledged signup is missing: subscribers in the database
against 2xx/3xx answers (wrk drops the requests still in flight when its time is up,
and the server may still commit those, so up to --connections more rows are fine),
their topics, and one confirmation message queued per subscriber.

--profile N skips gunicorn and wrk: it signs up N addresses through Django's test
client in this process, with the same settings and the same mix, under cProfile, and
prints where the time goes and the mean time with and without an interest.

--papers N adds N synthetic papers ingested yesterday (bench.population), for the cost
of a new interest with a month of feeds in the window rather than the sample's 72.
"""

import argparse
import cProfile
import datetime as dt
import io
import multiprocessing
import os
import pstats
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.digests import Child, _machine_busy_seconds, _recreate_database

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).with_name("signup.lua")
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/paperboy_bench_signup"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
QUEUE = "bench-signup"
SAMPLE = ROOT / "samples" / "trending-papers-page.txt"
UNLIMITED = str(10**9)
WRK_TIMEOUT = "10s"  # wrk's default (2 s) would count a slow signup as an error, not a latency
SIGNUP_PATH = "/subscribe/"
MINIMAL_PATH = "/bench/minimal"
ONE_INSERT_PATH = "/bench/one-insert"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
WARMUP_SIGNUPS = 20
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _environment(database_url: str, redis_url: str, port: int, var_dir: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PAPERBOY_QUEUE": QUEUE,
        "PAPERBOY_VAR_DIR": var_dir,
        "DEBUG": "false",
        "SECRET_KEY": "bench-signup-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SITE_URL": f"http://127.0.0.1:{port}",
        "PAPERBOY_SIGNUPS_PER_IP_PER_HOUR": UNLIMITED,
        "PAPERBOY_SIGNUPS_PER_ADDRESS_PER_HOUR": UNLIMITED,
        "LOG_LEVEL": "WARNING",
    }


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if shutil.which("apt-get") and os.geteuid() == 0:
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=quiet)
        if wrk := shutil.which("wrk"):
            return wrk
    raise SystemExit("bench.signup needs wrk: run 'sudo apt-get install wrk'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def _add_papers(env: dict, count: int) -> None:
    """``count`` synthetic papers from yesterday, scored: a month of feeds, not one page."""
    os.environ.update(env)
    import django

    django.setup()
    from django.utils import timezone

    from bench import population
    from papers.matching import score_papers
    from papers.models import Paper

    made = population.papers(count, random.Random(11), timezone.now() - dt.timedelta(days=1))
    score_papers(Paper.objects.bulk_create(made))


def prepare(env: dict, papers: int = 0) -> list[int]:
    """A fresh database with the sample papers (and ``papers`` more), an empty Redis;
    the curated topic ids."""
    import psycopg
    import redis

    _recreate_database(env["DATABASE_URL"])
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    _manage(env, "migrate", "--no-input", "--verbosity", "0")
    # DEBUG=false serves static files from whitenoise's manifest, which pages need.
    _manage(env, "collectstatic", "--no-input", "--verbosity", "0")
    _manage(env, "import_papers", str(SAMPLE))
    if papers:
        # In a process of its own: the bench process itself stays free of Django.
        process = multiprocessing.get_context("spawn").Process(
            target=_add_papers, args=(env, papers)
        )
        process.start()
        process.join()
        if process.exitcode:
            raise SystemExit("adding the synthetic papers failed")
    with psycopg.connect(env["DATABASE_URL"]) as connection:
        rows = connection.execute(
            "SELECT id FROM papers_topic WHERE kind = 'curated' ORDER BY id"
        ).fetchall()
    return [pk for (pk,) in rows]


class Server(Child):
    """gunicorn with 2 sync workers, as the Dockerfile runs it (no access log)."""

    def __init__(self, env: dict, port: int, log: Path, workers: int = 2):
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "paperboy.wsgi",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with self._get(MINIMAL_PATH, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"gunicorn did not start; see {log}")
            time.sleep(0.2)

    def _get(self, path: str, timeout: float):
        # Always http://127.0.0.1:<port>, never a URL from outside.
        return urllib.request.urlopen(self.base + path, timeout=timeout)  # noqa: S310

    def csrf(self) -> tuple[str, str]:
        """The cookie and form token of one signup page, reused for every POST."""
        with self._get(SIGNUP_PATH, timeout=10) as response:
            cookies = response.headers.get_all("Set-Cookie") or []
            page = response.read().decode()
        cookie = next(
            value.split(";")[0].partition("=")[2]
            for value in cookies
            if value.startswith("csrftoken=")
        )
        return cookie, CSRF_INPUT.search(page).group(1)


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * UNITS[unit]


def parse_wrk(output: str) -> dict:
    """Requests/s, p50/p99 latency (ms), counts and errors from `wrk --latency`."""
    figures = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "non_2xx_3xx": 0,
        "socket_errors": "",
    }
    for percentile in ("50", "99"):
        found = re.search(rf"^\s+{percentile}%\s+(\S+)", output, re.MULTILINE)
        figures[f"p{percentile}"] = _milliseconds(found.group(1))
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        figures["non_2xx_3xx"] = int(found.group(1))
    if found := re.search(r"Socket errors: (.+)", output):
        figures["socket_errors"] = found.group(1).strip()
    if found := re.search(r"signup-counts sent=(\d+) ok=(\d+) other=(\d+)", output):
        figures["sent"], figures["ok"], figures["other"] = map(int, found.groups())
    return figures


def run_wrk(
    wrk: str, url: str, duration: int, connections: int, threads: int, script_args=None
) -> dict:
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={WRK_TIMEOUT}",
        "--latency",
    ]
    if script_args is not None:
        command += ["-s", str(LUA), url, "--", *script_args]
    else:
        command.append(url)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    if result.stderr.strip():
        print(result.stderr.strip(), file=sys.stderr)
    figures = parse_wrk(result.stdout)
    figures["output"] = result.stdout
    return figures


class Database:
    """What the checks read, in SQL: the bench process never loads Django for a run."""

    def __init__(self, url: str):
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True)

    def subscribers(self, tag: str) -> int:
        return self._one(
            "SELECT count(*) FROM subscriptions_subscriber WHERE email LIKE %s", [f"{tag}-%"]
        )

    def topic_counts(self, tag: str) -> dict[int, int]:
        """How many subscribers have how many topics."""
        rows = self.connection.execute(
            """
            SELECT n, count(*) FROM (
                SELECT s.id, count(st.topic_id) AS n
                FROM subscriptions_subscriber s
                LEFT JOIN subscriptions_subscriber_topics st ON st.subscriber_id = s.id
                WHERE s.email LIKE %s GROUP BY s.id
            ) per_subscriber GROUP BY n ORDER BY n
            """,
            [f"{tag}-%"],
        ).fetchall()
        return dict(rows)

    def papers(self) -> int:
        return self._one("SELECT count(*) FROM papers_paper")

    def interest_topics(self) -> int:
        return self._one("SELECT count(*) FROM papers_topic WHERE kind = 'interest'")

    def _one(self, sql: str, params=()) -> int:
        return self.connection.execute(sql, params).fetchone()[0]


def queued_messages(redis_url: str, task: str = "subscriptions.send_confirmation") -> int:
    """``task`` messages waiting on the bench's Celery queue (kombu keeps one list per
    priority); new interests also queue their rescoring there."""
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    keys = [key for key in client.scan_iter(f"{QUEUE}*") if client.type(key) == b"list"]
    return sum(
        1
        for key in keys
        for raw in client.lrange(key, 0, -1)
        if json.loads(raw).get("headers", {}).get("task") == task
    )


def _settle(database: Database, tag: str, seconds: float = 10) -> int:
    """Subscriber rows once the requests wrk abandoned have finished on the server."""
    count, deadline = database.subscribers(tag), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = database.subscribers(tag)
        if now == count:
            return count
        count = now
    return count


def measure(args, env: dict, port: int, folder: Path) -> dict:
    wrk = ensure_wrk()
    topic_ids = prepare(env, args.papers)
    if len(topic_ids) < 2:
        raise SystemExit("the migrations created fewer than two curated topics")
    database = Database(env["DATABASE_URL"])
    server = Server(env, port, folder / "gunicorn.log")
    try:
        cookie, token = server.csrf()
        ids = ",".join(map(str, topic_ids))
        minimal_url, signup_url = server.base + MINIMAL_PATH, server.base + SIGNUP_PATH
        run_id = secrets.token_hex(3)

        def signup_args(tag: str) -> list[str]:
            return [cookie, token, ids, str(args.interest_every), tag]

        if args.warmup:
            # Both workers import and compile what they need before anything is timed.
            run_wrk(wrk, minimal_url, args.warmup, args.connections, args.threads)
            run_wrk(
                wrk,
                signup_url,
                args.warmup,
                args.connections,
                args.threads,
                signup_args(f"w{run_id}"),
            )
        _settle(database, f"w{run_id}")

        def timed(url: str, script_args=None) -> dict:
            # CPU per request says whether the machine, not the server's design, is the limit.
            server_cpu, busy = server.cpu_seconds(), _machine_busy_seconds()
            figures = run_wrk(wrk, url, args.duration, args.connections, args.threads, script_args)
            figures["server_cpu"] = server.cpu_seconds() - server_cpu
            figures["machine_cpu"] = _machine_busy_seconds() - busy
            return figures

        minimal = timed(minimal_url)
        # What the target leaves room for: the same POST writing one row and nothing else.
        one_insert = timed(server.base + ONE_INSERT_PATH, signup_args(f"i{run_id}"))
        tag = f"b{run_id}"
        queued_before = queued_messages(env["REDIS_URL"])
        interests_before = database.interest_topics()
        signup = timed(signup_url, signup_args(tag))
        rows = _settle(database, tag)
    finally:
        server.stop()
    signup["rows"] = rows
    signup["topics"] = database.topic_counts(tag)
    signup["queued"] = queued_messages(env["REDIS_URL"]) - queued_before
    signup["interest_topics"] = database.interest_topics() - interests_before
    (folder / "wrk-minimal.txt").write_text(minimal["output"])
    (folder / "wrk-one-insert.txt").write_text(one_insert["output"])
    (folder / "wrk-signup.txt").write_text(signup["output"])
    return {
        "minimal": minimal,
        "one_insert": one_insert,
        "signup": signup,
        "papers": database.papers(),
        "problems": check(signup, args),
    }


def check(signup: dict, args) -> list[str]:
    problems = []
    rows, ok, sent = signup["rows"], signup.get("ok"), signup.get("sent")
    if ok is None:
        return ["bench/signup.lua printed no counts"]
    if rows < ok:
        problems.append(f"{ok - rows} acknowledged signups are missing ({rows} rows, {ok} answers)")
    if rows > sent:
        problems.append(f"{rows} subscriber rows but only {sent} requests sent")
    if rows - ok > args.connections:
        problems.append(f"{rows - ok} rows beyond the answers, more than the connections")
    if signup["other"] or signup["non_2xx_3xx"]:
        problems.append(f"{max(signup['other'], signup['non_2xx_3xx'])} answers were not 2xx/3xx")
    if set(signup["topics"]) - {2, 3}:
        problems.append(f"subscribers by number of topics: {signup['topics']} (expected 2 or 3)")
    if signup["queued"] != rows:
        problems.append(f"{signup['queued']} confirmation messages queued for {rows} subscribers")
    return problems


def report(figures: dict, args) -> str:
    minimal, one_insert, signup = figures["minimal"], figures["one_insert"], figures["signup"]
    ratio = signup["rps"] / minimal["rps"]
    rows = [
        f"| {name} | {row['rps']:.0f} | {row['p50']:.1f} ms | {row['p99']:.1f} ms "
        f"| {row['requests']:,} | {row['non_2xx_3xx']} "
        f"| {1000 * row['server_cpu'] / row['requests']:.2f} ms "
        f"| {1000 * row['machine_cpu'] / row['requests']:.2f} ms |"
        for name, row in (
            ("GET minimal view", minimal),
            ("POST one insert (the same form, one row written)", one_insert),
            ("POST signup", signup),
        )
    ]
    return "\n".join(
        [
            f"gunicorn, 2 sync workers; wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration}s on loopback; a new interest in 1 signup in "
            f"{args.interest_every or 'none'}; {figures['papers']:,} papers in the rescoring "
            "window.",
            "",
            "| endpoint | requests/s | p50 | p99 | requests | non-2xx/3xx "
            "| gunicorn CPU/request | machine CPU/request |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            f"| one insert / minimal | {one_insert['rps'] / minimal['rps']:.3f}x | "
            f"| {one_insert['p99'] / minimal['p99']:.1f}x | | | | |",
            f"| signup / minimal | {ratio:.3f}x | | {signup['p99'] / minimal['p99']:.1f}x "
            "| | | | |",
            f"| signup / one insert | {signup['rps'] / one_insert['rps']:.3f}x | | | | | | |",
            "",
            f"Target: signup at >= 0.5x the minimal view: {'met' if ratio >= 0.5 else 'NOT met'}.",
            f"Signups: {signup['sent']:,} sent, {signup['ok']:,} answered 2xx/3xx, "
            f"{signup['other']} other; {signup['rows']:,} subscriber rows; "
            f"{signup['queued']:,} confirmation messages queued (no worker running); "
            f"{signup['interest_topics']:,} interest topics created; "
            f"subscribers by topic count {signup['topics']}; "
            f"socket errors: {signup['socket_errors'] or 'none'}.",
            f"Checks: {'; '.join(figures['problems']) or 'all passed'}.",
        ]
    )


# Profiling ------------------------------------------------------------------------


def profile(count: int, interest_every: int, papers: int, env: dict) -> str:
    """Sign up ``count`` addresses through the test client, timed, then ``count`` more
    under cProfile (which about doubles the time, so the means come from the first)."""
    prepare(env, papers)
    os.environ.update(env)
    import django

    django.setup()
    from django.test import Client

    from papers.models import Paper, Topic

    client = Client(HTTP_HOST="127.0.0.1")
    topic_ids = list(Topic.objects.curated().values_list("pk", flat=True))

    def sign_up(n: int, with_interest: bool) -> None:
        data = {
            "email": f"profile-{n}@bench.example",
            "topics": [topic_ids[n % len(topic_ids)], topic_ids[(n + 1) % len(topic_ids)]],
            "interests": f"world models p{n}" if with_interest else "",
            "frequency": "daily",
            "weekday": "0",
            "send_hour": "8",
            "timezone": "Europe/Berlin",
            "max_papers": "10",
        }
        response = client.post(SIGNUP_PATH, data)
        if response.status_code != 302:
            raise SystemExit(f"signup answered {response.status_code}")

    # Imports, templates, connections and the stemmer's cache, as in a worker that has
    # been up for a while, before anything is timed.
    for n in range(-WARMUP_SIGNUPS, 0):
        sign_up(n, n % 5 == 0)
    times: dict[bool, list[float]] = {False: [], True: []}
    profiler = cProfile.Profile()
    for n in range(1, 2 * count + 1):
        with_interest = interest_every > 0 and n % interest_every == 0
        if n <= count:
            started = time.perf_counter()
            sign_up(n, with_interest)
            times[with_interest].append(time.perf_counter() - started)
        else:
            profiler.runcall(sign_up, n, with_interest)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative")).print_stats(40)
    lines = [f"{Paper.objects.count()} papers in the rescoring window."]
    for with_interest, values in times.items():
        if values:
            kind = "with a new interest" if with_interest else "curated topics only"
            lines.append(
                f"{len(values)} signups {kind}: mean {1000 * sum(values) / len(values):.1f} ms "
                "(test client, no profiler)"
            )
    return "\n".join(lines) + "\n\n" + out.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, default=1, help="wrk threads; one leaves the cores to gunicorn"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed seconds first")
    parser.add_argument("--interest-every", type=int, default=5, help="0: never an interest")
    parser.add_argument(
        "--papers",
        type=int,
        default=0,
        help="synthetic recent papers besides the sample's 72: what a new interest rescores",
    )
    parser.add_argument("--profile", type=int, metavar="N", help="profile N signups instead")
    parser.add_argument("--folder", type=Path, help="keep logs and wrk output here")
    args = parser.parse_args(argv)
    database_url = os.environ.get("BENCH_SIGNUP_DATABASE_URL", DEFAULT_DATABASE)
    redis_url = os.environ.get("BENCH_SIGNUP_REDIS_URL", DEFAULT_REDIS)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="paperboy-bench-signup-"))
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = _environment(database_url, redis_url, port, str(folder / "var"))
    if args.profile:
        print(profile(args.profile, args.interest_every, args.papers, env))
        return 0
    figures = measure(args, env, port, folder)
    print(report(figures, args))
    print(f"\nwrk output and the gunicorn log: {folder}", file=sys.stderr)
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
