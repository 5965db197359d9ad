"""django-newsletter on the same sink, for the ratio of rates in the digest benchmark.

    .venv/bin/python -m bench.peer [--subscribers 10000] [--folder DIR] [--smtp-port PORT]

django-newsletter runs in a throwaway virtualenv outside Paperboy's dependencies
(~/.cache/paperboy-bench/peer-venv, built on first use and again only when its pinned
requirements change), on the Django Paperboy runs, in the small project in
bench/peer_project. It gets its own PostgreSQL database on the same server as
Paperboy's run (BENCH_PEER_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/paperboy_bench_peer, dropped and created again), so
both pay the same for their queries. One newsletter of ten articles (real titles and
the first 60 words of real abstracts from samples/) goes to N confirmed subscriptions
through its own submit_newsletter command, timed from start to finish; the sink's
spool must then hold exactly one message to each subscriber. Its rate is flat in N
(each message is rendered and sent on a connection of its own), so 10,000 is enough.
"""

import argparse
import html
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from importlib.metadata import version
from pathlib import Path

from bench.digests import Sink, _recreate_database
from bench.sink import spool_index

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "peer_project"
SAMPLE = ROOT / "samples" / "trending-papers-page.txt"
VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
    "paperboy-bench/peer-venv"
)
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/paperboy_bench_peer"
NEWSLETTER_VERSION = "1.2.1"
ARTICLES = 10
ARTICLE_WORDS = 60


def requirements() -> list[str]:
    """Pinned, so that a reused virtualenv is the one these name."""
    return [
        f"django-newsletter=={NEWSLETTER_VERSION}",
        # Paperboy's own Django and psycopg, so that only the app differs. django-newsletter
        # 1.2.1 declares Django>=4.2 and runs on 6.1 unchanged.
        f"Django=={version('Django')}",
        f"psycopg[binary]=={version('psycopg')}",
        # Its first migration imports sorl-thumbnail; its docs say to install one thumbnailer.
        "sorl-thumbnail==13.4.0",
    ]


def virtualenv() -> Path:
    """The peer virtualenv's python, built (again) unless it matches the stamp."""
    python = VENV / "bin" / "python"
    stamp = VENV / "paperboy-bench.json"
    wanted = {"python": sys.version, "requirements": requirements()}
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return python
    # From scratch: an upgrade in place could leave packages the pins no longer name.
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    print(f"peer: building {VENV} with {', '.join(wanted['requirements'])}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + wanted["requirements"],
        check=True,
    )
    # Written last: an interrupted build is rebuilt next time rather than reused.
    stamp.write_text(json.dumps(wanted))
    return python


def articles() -> list[dict]:
    """Ten articles the size of a digest's papers: a real title and 60 words of its
    abstract, as HTML, as a rich-text editor would store them."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", SAMPLE.read_text()) if p.strip()]
    made = []
    for title, abstract in itertools.pairwise(paragraphs):
        # The page is header lines, then a title line followed by its abstract paragraph.
        if len(title.split()) <= 30 and len(abstract.split()) >= ARTICLE_WORDS:
            text = " ".join(abstract.split()[:ARTICLE_WORDS])
            made.append(
                {
                    "title": title[:200],
                    "text": f"<p>{html.escape(text)}</p>",
                    "url": f"https://arxiv.org/abs/2611.{len(made) + 1:05d}",
                }
            )
        if len(made) == ARTICLES:
            return made
    raise RuntimeError(f"{SAMPLE} has fewer than {ARTICLES} papers")


def check_spool(spool: Path, subscribers: int) -> list[int]:
    """Exactly one message to each subscriber; returns the messages' sizes."""
    sizes, recipients = [], Counter()
    for _offset, size, rcpts in spool_index(spool):
        sizes.append(size)
        recipients[tuple(rcpts)] += 1
    expected = {(f"peer{n}@bench.example",) for n in range(subscribers)}
    if len(sizes) != subscribers or set(recipients) != expected or max(recipients.values()) > 1:
        raise RuntimeError(
            f"the sink received {len(sizes)} messages for {len(recipients)} addresses, "
            f"expected one to each of {subscribers}"
        )
    return sizes


def measure(subscribers: int, folder: Path, smtp_port: int | None = None) -> dict:
    """The rate and what went with it. With smtp_port the caller owns the sink, and the
    check of what it received is the caller's too."""
    folder.mkdir(parents=True, exist_ok=True)
    python = virtualenv()
    database_url = os.environ.get("BENCH_PEER_DATABASE_URL", DEFAULT_DATABASE)
    _recreate_database(database_url)
    articles_file = folder / "articles.json"
    articles_file.write_text(json.dumps(articles()))
    sink = Sink(folder) if smtp_port is None else None
    env = {
        # Nothing of Paperboy's environment (PYTHONPATH, DJANGO_SETTINGS_MODULE, …).
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "settings",
        "PEER_DATABASE_URL": database_url,
        "PEER_SMTP_PORT": str(smtp_port or sink.port),
    }
    try:
        output = subprocess.run(
            [str(python), str(PROJECT / "run.py"), str(subscribers), str(articles_file)],
            cwd=PROJECT,
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
    finally:
        if sink is not None:
            sink.stop()
    result = json.loads(output.strip().splitlines()[-1])
    if result["errors"] or not result["sent"]:
        raise RuntimeError(
            f"django-newsletter logged {result['errors']} failed sends "
            f"(first: {result['first_error']}); submission sent: {result['sent']}"
        )
    figures = {
        "rate": subscribers / result["seconds"],
        "seconds": result["seconds"],
        "versions": result["versions"],
        "message_bytes": None,
    }
    if sink is not None:
        sizes = check_spool(sink.spool, subscribers)
        figures["message_bytes"] = round(sum(sizes) / len(sizes))
    return figures


def run(subscribers: int, folder: Path, smtp_port: int | None = None) -> float:
    """django-newsletter's messages/s to the sink, for N subscribers."""
    return measure(subscribers, folder, smtp_port)["rate"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--folder", type=Path, help="keep the spool here")
    parser.add_argument("--smtp-port", type=int, help="send to this sink instead of our own")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="paperboy-peer-"))
    figures = measure(args.subscribers, folder, args.smtp_port)
    versions = figures["versions"]
    size = f", {figures['message_bytes']:,} bytes each" if figures["message_bytes"] else ""
    print(
        f"django-newsletter {versions['django-newsletter']} on Django {versions['Django']}: "
        f"{figures['rate']:.1f} messages/s ({args.subscribers:,} in "
        f"{figures['seconds']:.1f} s{size})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
