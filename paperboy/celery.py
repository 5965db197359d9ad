import logging
import os

from celery import Celery
from celery.signals import task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paperboy.settings")

logger = logging.getLogger(__name__)

app = Celery("paperboy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def drop_dead_database_connections(task=None, **kwargs):
    # A worker keeps its connection across tasks (CELERY_DB_REUSE_MAX), and Celery looks
    # at it only every so many tasks: one the server dropped (a restart, a failover, a
    # killed backend) would fail every task until then. Django's check before each task
    # costs one round trip. Eager tasks run inside the caller's transaction: left alone.
    if task is not None and not task.request.is_eager:
        from django.db import close_old_connections

        close_old_connections()


@worker_ready.connect
def embed_what_the_model_has_not_seen(sender=None, **kwargs):
    # After an upgrade or a change of PAPERBOY_EMBEDDING_MODEL, papers and topics carry
    # vectors of another model: re-embed them in the background, in batches. Only then:
    # a task in the queue at every start would hide an empty queue from the scheduling
    # pass, which looks for lost digests only when nothing waits (digest.scheduling.sweep).
    from django.conf import settings
    from django.db import DatabaseError, connection

    from papers import matching
    from papers.tasks import reembed

    if settings.PAPERBOY_MATCHING == "lexical":
        return
    try:
        stale = any(matching.stale_counts())
    except DatabaseError:
        # Not migrated yet, or the database is away: the next start looks again.
        logger.warning("Could not look for papers and topics without vectors", exc_info=True)
        return
    finally:
        connection.close()  # the main process runs no tasks: no connection to keep
    if stale:
        reembed.delay()


@worker_ready.connect
def import_feeds_never_tried(sender=None, **kwargs):
    # The schedule's first tick comes an interval after installing: a new installation's
    # first papers come when its worker first starts instead, as does a feed just added.
    from django.db import DatabaseError, connection

    from papers import feeds
    from papers.tasks import import_feeds

    try:
        never = feeds.never_tried()
    except DatabaseError:
        logger.warning("Could not look for feeds never imported", exc_info=True)
        return
    finally:
        connection.close()
    if never:
        import_feeds.delay()
