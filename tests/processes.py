"""Celery worker and beat processes for tests that need the real thing."""

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent


def database_url(db: dict) -> str:
    """A DATABASE_URL for the database a test runs on, for child processes."""
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class CeleryProcess:
    """`celery -A digest ...` in a child process, its output read line by line."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "digest", *args, "--loglevel", "INFO"],
            cwd=ROOT,
            env=os.environ | {"DJANGO_SETTINGS_MODULE": "digest.settings"} | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float, *, regex: bool = False) -> str:
        """Block until a line containing ``text`` (or matching it, with ``regex``) is
        printed (reading, not sleeping)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.output.append(line)
            if re.search(text, line) if regex else text in line:
                return line
        raise AssertionError(f"never logged {text!r}; the process said:\n{''.join(self.output)}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join()
        self.process.stdout.close()
