"""Celery worker and beat processes, and a private Redis, for tests that need the real
thing."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from tests.support.paths import ROOT

# What the reader thread queues once the output has ended.
_EOF = None


def database_url(db: dict) -> str:
    """A DATABASE_URL for the database a test runs on, for child processes."""
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of a process, from /proc; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may itself hold spaces and parentheses.
    state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
    return state, int(ppid), int(pgrp)


def live_pids(*, ppid: int | None = None, pgrp: int | None = None) -> list[int]:
    """Processes still running (zombies excluded: they are dead, only not yet reaped)
    whose parent is ``ppid`` and/or whose process group is ``pgrp``, from /proc."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is None or stat[0] in "ZX":
            continue
        if (ppid is None or stat[1] == ppid) and (pgrp is None or stat[2] == pgrp):
            found.append(int(entry.name))
    return sorted(found)


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie), from /proc."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in "ZX"


def _group_pidfds(pgrp: int) -> list[int]:
    """pidfds of the processes of group ``pgrp``: unlike a pid, a pidfd cannot come to
    name another process, and it tells when its own has exited."""
    pidfds = []
    for pid in live_pids(pgrp=pgrp):
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        stat = _proc_stat(pid)
        # Gone and its pid given to another process between the look and the open.
        if stat is None or stat[2] != pgrp:
            os.close(pidfd)
            continue
        pidfds.append(pidfd)
    return pidfds


def _wait_exited(pidfds: list[int], timeout: float = 60) -> None:
    """Block until every process named by ``pidfds`` has exited; close them."""
    deadline = time.monotonic() + timeout
    try:
        for pidfd in pidfds:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(max(0, deadline - time.monotonic()) * 1000):
                raise RuntimeError(f"a killed process still runs after {timeout}s")
    finally:
        for pidfd in pidfds:
            os.close(pidfd)


class CeleryProcess:
    """`celery -A paperboy ...` in a child process, its output read line by line.

    The child leads a session of its own, so that ``kill()`` reaches the pool processes
    it forks as well, and a Ctrl-C meant for pytest does not stop it behind the test's
    back: tests stop it themselves.
    """

    def __init__(self, args: list[str], env: dict[str, str]):
        self.args = args
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._ended = False
        self._terminated = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "paperboy", *args, "--loglevel", "INFO"],
            cwd=ROOT,
            env=os.environ | {"DJANGO_SETTINGS_MODULE": "paperboy.settings"} | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def pid(self) -> int:
        """The main process's pid, which is also its process group's id."""
        return self.process.pid

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        # The end of the output: every process of the group has closed it, by exiting.
        self.lines.put(_EOF)

    def wait_for(self, text: str, timeout: float, *, regex: bool = False) -> str:
        """Block until a line containing ``text`` (or matching it, with ``regex``) is
        printed (reading, not sleeping). Fails at once when the output has ended."""
        deadline = time.monotonic() + timeout
        while not self._ended and (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is _EOF:
                self._ended = True
                break
            self.output.append(line)
            if re.search(text, line) if regex else text in line:
                return line
        ended = " and ended" if self._ended else ""
        raise AssertionError(
            f"never logged {text!r}; the process said{ended}:\n{''.join(self.output)}"
        )

    @property
    def printed(self) -> str:
        """Everything printed so far, including lines no ``wait_for`` has read yet
        (those remain for it to read)."""
        with self.lines.mutex:
            pending = [line for line in self.lines.queue if line is not _EOF]
        return "".join(self.output + pending)

    def pool_pids(self) -> list[int]:
        """The running children of the main process (a worker's pool processes, once it
        has logged "ready"), from /proc."""
        return live_pids(ppid=self.pid)

    def group_pids(self) -> list[int]:
        """Every running process of the group (main process included), from /proc."""
        return live_pids(pgrp=self.pid)

    def terminate(self) -> None:
        """Ask the main process to shut down (SIGTERM: a worker's warm shutdown), once,
        without waiting; ``stop()`` waits."""
        if not self._terminated:
            self._terminated = True
            self.process.terminate()

    def stop(self):
        """SIGTERM, then wait (30s at most, then SIGKILL) until it has exited."""
        self.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self.reader.join(timeout=30)
        if self.reader.is_alive():
            # A process of the group outlived the main one, holding the output open.
            self.kill()
            return
        self.process.stdout.close()

    def kill(self) -> None:
        """SIGKILL the whole process group, main process and pool, and return once every
        one of them has exited and the main process is reaped. Safe to call from any
        thread, and again; the output stays readable (``printed``, ``wait_for``)."""
        # While the main process is unreaped, or a process of the group still holds the
        # output open, the group's id cannot have been given to another process.
        if self.process.returncode is None or self.reader.is_alive():
            # Opened before the signal, while the processes cannot have been reaped.
            pidfds = _group_pidfds(self.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            # The end of the output is not enough: a process closes its files on the
            # way out, a moment before it is gone.
            _wait_exited(pidfds)
        self.process.wait()
        # The end of the output means every process that shared it has closed it.
        self.reader.join()
        self.process.stdout.close()

    def __repr__(self) -> str:
        return f"<CeleryProcess {self.pid} {' '.join(self.args)}>"


def celery_env(
    database: dict | str,
    email_url: str,
    *,
    redis_url: str | None = None,
    queue: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment a worker or beat needs: ``database`` (a Django DATABASES entry,
    such as ``connection.settings_dict``, or a URL), ``email_url`` (e.g.
    ``smtp_server.url``), a broker (``redis_url``; without it the test process's
    REDIS_URL, if any, else the filesystem broker) and a queue of the test's own
    (``queue``, by default a new one), so that no other worker on this machine takes the
    tasks. Matching is by words alone, as in the test process. ``extra`` adds or
    overrides variables."""
    env = {
        "DATABASE_URL": database if isinstance(database, str) else database_url(database),
        "EMAIL_URL": email_url,
        "SITE_URL": "https://papers.example",
        "PAPERBOY_QUEUE": queue or f"test{uuid.uuid4().hex}",
        # As in the test process (tests/conftest.py): these tests are about delivery.
        "PAPERBOY_MATCHING": "lexical",
        # Nor do they fetch the default feeds (Hugging Face's) when the worker starts.
        "PAPERBOY_FEED_URLS": "",
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env | extra


class CeleryCluster:
    """Workers and beats sharing one environment (see ``celery_env``), stopped together:
    beats first, so that nothing new is scheduled, then workers, each group in parallel.
    A context manager."""

    def __init__(
        self, env: dict[str, str], *, workers: int = 1, beats: int = 0, concurrency: int = 2
    ):
        self.env = env
        self.concurrency = concurrency
        self.workers: list[CeleryProcess] = []
        self.beats: list[CeleryProcess] = []
        for _ in range(workers):
            self.add_worker()
        for _ in range(beats):
            self.add_beat()

    def add_worker(self, concurrency: int | None = None) -> CeleryProcess:
        """Start one more worker (``concurrency`` pool processes, the cluster's by
        default), with a node name of its own."""
        worker = CeleryProcess(
            [
                "worker",
                "--concurrency",
                str(concurrency or self.concurrency),
                "--hostname",
                f"w{len(self.workers) + 1}.{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            self.env,
        )
        self.workers.append(worker)
        return worker

    def add_beat(self) -> CeleryProcess:
        """Start one more beat, ticking at least every second."""
        beat = CeleryProcess(["beat", "--max-interval", "1"], self.env)
        self.beats.append(beat)
        return beat

    @property
    def processes(self) -> list[CeleryProcess]:
        return self.beats + self.workers

    def stop(self) -> None:
        for group in (self.beats, self.workers):
            _stop_together(group)

    def kill(self) -> None:
        for process in self.processes:
            process.kill()

    def __enter__(self) -> CeleryCluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _stop_together(processes: Iterable[CeleryProcess]) -> None:
    processes = list(processes)
    # Warm shutdowns take a while each; side by side they take the time of the longest.
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` on a loopback port, keeping nothing on disk: a restart
    loses every key, queued tasks included. A context manager."""

    READY = "Ready to accept connections"

    def __init__(self, directory: Path, *, timeout: float = 30):
        self.directory = Path(directory)
        self.timeout = timeout
        self.output: list[str] = []
        self.process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        # A port found free may be taken before Redis binds it; another one will do.
        for attempt in range(5):
            self.port = free_port()
            if self._start(fail=attempt == 4):
                break

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    def _start(self, *, fail: bool) -> bool:
        """Start on ``self.port`` and return once Redis says it is ready; False if the
        port was taken (unless ``fail``: then raise)."""
        process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--logfile",
                "",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        ready = threading.Event()
        started = len(self.output)

        def read():
            for line in process.stdout:
                self.output.append(line)
                if self.READY in line:
                    ready.set()
            # Also wakes the waiter when Redis exits before it is ready.
            ready.set()

        def said() -> str:
            return "".join(self.output[started:])

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if ready.wait(self.timeout) and self.READY in said():
            self.process, self._reader = process, reader
            return True
        self._kill(process, reader)
        if not fail and "Address already in use" in said():
            return False
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{said()}")

    @staticmethod
    def _kill(process: subprocess.Popen, reader: threading.Thread) -> None:
        process.kill()
        process.wait()
        reader.join()
        process.stdout.close()

    def restart(self) -> None:
        """SIGKILL the server and start a new one on the same port; return once it is
        ready."""
        self._kill(self.process, self._reader)
        self._start(fail=True)

    def stop(self) -> None:
        """SIGKILL: there is nothing to save."""
        if self.process is not None and self.process.returncode is None:
            self._kill(self.process, self._reader)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url}>"
