"""django-newsletter on the same sink, for the ratio of rates in the digest benchmark.

    .venv/bin/python -m bench.peer [--subscribers 10000]

django-newsletter runs in a throwaway virtualenv outside Paperboy's dependencies
(~/.cache/paperboy-bench/peer-venv, made once), in the small project in
bench/peer_project, against its own PostgreSQL database, sending one newsletter of ten
articles to N subscribers through Submission.submit(), as its cron job does. Its rate
is flat in N (every message is rendered and sent on its own connection), so 10,000 is
enough to measure it.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.digests import DEFAULT_DATABASE, Sink, _recreate_database
from bench.sink import spool_index

PROJECT = Path(__file__).resolve().parent / "peer_project"
VENV = Path.home() / ".cache" / "paperboy-bench" / "peer-venv"
REQUIREMENTS = [
    "django-newsletter==1.2.1",
    "sorl-thumbnail>=12.10",  # imported by its models, though no thumbnail is made
    "Django>=6.1,<6.2",
    "psycopg[binary]>=3.3",
]


def virtualenv() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / "requirements.json"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or json.loads(stamp.read_text()) != REQUIREMENTS:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
        stamp.write_text(json.dumps(REQUIREMENTS))
    return python


def run(subscribers: int, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    python = virtualenv()
    database_url = DEFAULT_DATABASE.rsplit("/", 1)[0] + "/paperboy_bench_peer"
    _recreate_database(database_url)
    sink = Sink(folder)
    try:
        env = {"PEER_DATABASE": "paperboy_bench_peer", "PEER_SMTP_PORT": str(sink.port)}
        output = subprocess.run(
            [str(python), str(PROJECT / "run.py"), str(subscribers)],
            cwd=PROJECT,
            env={"PATH": "/usr/bin:/bin", **env},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        sink.stop()
    seconds = json.loads(output.strip().splitlines()[-1])["seconds"]
    received = list(spool_index(sink.spool))
    if len(received) != subscribers:
        raise RuntimeError(f"the sink received {len(received)} messages, expected {subscribers}")
    return {
        "rate": subscribers / seconds,
        "seconds": seconds,
        "message_bytes": received[0][1],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="paperboy-peer-"))
    figures = run(args.subscribers, folder)
    print(
        f"django-newsletter: {figures['rate']:.0f} messages/s "
        f"({args.subscribers:,} in {figures['seconds']:.1f} s, "
        f"{figures['message_bytes']:,} bytes each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
