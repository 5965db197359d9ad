"""Real processes to break on purpose: a private Redis, and Celery workers and beats.

Fixtures:

- ``redis_server``: a ``tests.support.processes.RedisServer`` of the test's own (``.url``,
  ``.restart()``, ``.stop()``), stopped at the end of the test.
- ``celery_cluster``: ``celery_cluster(env, workers=1, beats=0, concurrency=2)`` starts a
  ``tests.support.processes.CeleryCluster``; every cluster started is stopped at the end of the
  test, even one that failed. Build ``env`` with ``tests.support.processes.celery_env``.
"""

from __future__ import annotations

import pytest

from tests.support.processes import CeleryCluster, RedisServer


@pytest.fixture
def redis_server(tmp_path_factory):
    """A redis-server of this test's own on a loopback port, with no persistence."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def celery_cluster():
    """Start Celery workers and beats sharing one environment; all stopped at the end."""
    clusters: list[CeleryCluster] = []

    def start(
        env: dict[str, str], *, workers: int = 1, beats: int = 0, concurrency: int = 2
    ) -> CeleryCluster:
        cluster = CeleryCluster(env, workers=workers, beats=beats, concurrency=concurrency)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()
