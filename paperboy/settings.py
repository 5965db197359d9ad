"""Paperboy settings: one module, driven by environment variables.

With no variables set, Paperboy runs embedded: SQLite under var/, a Celery
broker on the filesystem and email written to var/outbox/ as .eml files. Set
the variables documented in the README to run in production.
"""

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from paperboy.env import Env

env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.str("PAPERBOY_VAR_DIR") or BASE_DIR / "var")

DEBUG = env.bool("DEBUG", default=True)

SECRET_KEY = env.str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY: must be set when DEBUG is off (production)")
    # Only good for a developer's machine; DEBUG=false refuses to start without one.
    SECRET_KEY = "paperboy-insecure-development-key"  # noqa: S105
# Earlier keys, comma-separated, newest first: after a rotation the links already in
# inboxes (manage, unsubscribe, List-Unsubscribe) keep working; drop a key once its
# links may have expired. Keys cannot contain commas.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
SITE_URL = env.http_url("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "paperboy.apps.PaperboyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "anymail",
    "paperboy",
    "papers",
    "subscriptions",
    "digest",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "paperboy.urls"
WSGI_APPLICATION = "paperboy.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'paperboy.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite creates the file but not its folder; a fresh clone has no var/ yet.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # Web, worker and beat share one file: wait for locks instead of failing,
        # take write locks up front, and let readers proceed during writes.
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that a Celery worker started by a test sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", 60, min_value=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.redis("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# In development whitenoise serves files straight from the apps (no collectstatic).
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Email -----------------------------------------------------------------------
MAILERS = env.mailers("EMAIL_URL", default_outbox=VAR_DIR / "outbox")
ANYMAIL = env.anymail()
# Without ANYMAIL_WEBHOOK_SECRET ("user:password", also given to the ESP), anymail would
# accept webhook posts from anyone, and anyone could suppress any address. An unguessable
# per-process secret keeps the webhooks shut until the operator sets one.
ANYMAIL.setdefault("WEBHOOK_SECRET", f"unset:{secrets.token_urlsafe(32)}")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "Paperboy <hello@localhost>")
# Digests come from their own address, apart from transactional mail (confirmations).
DIGEST_FROM_EMAIL = env.str("DIGEST_FROM_EMAIL", "Paperboy digest <digest@localhost>")
SERVER_EMAIL = env.str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)

# Celery ----------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
else:
    # No server needed: messages are files in one folder that every process on
    # this machine shares, so a real worker and beat run without Redis.
    _broker_dirs = {name: VAR_DIR / "celery" / name for name in ("broker", "control", "processed")}
    for _folder in _broker_dirs.values():
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dirs["broker"]),
        "data_folder_out": str(_broker_dirs["broker"]),
        "control_folder": str(_broker_dirs["control"]),
        "processed_folder": str(_broker_dirs["processed"]),
        "store_processed": False,
        # Each worker takes its next task only at the next look at the folder (one a
        # second by default): behind a beat tick a second it never caught up, so the
        # queue never emptied and lost digests were never looked for.
        "polling_interval": 0.1,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Tests and side-by-side deployments give their processes a queue of their own.
CELERY_TASK_DEFAULT_QUEUE = env.str("PAPERBOY_QUEUE", "celery")
# Celery's Django fixup closes every database connection before and after each task
# unless this is set; a new PostgreSQL connection costs about 8 ms, so a worker keeps
# its connection for this many tasks (Django's health checks still drop a dead one).
CELERY_DB_REUSE_MAX = env.int("PAPERBOY_DB_REUSE_MAX", 100, min_value=0)
# A task is acknowledged only after it finished, and a pool process killed mid-task
# puts it back on the queue: the digests of its batch that were still "claimed" are sent
# by the redelivered task. Redelivery never sends twice: a batch only sends digests it
# moves from "claimed" to "sending" itself, and a digest is "sending" once the mail
# server holds it (see digest.sending). A whole worker killed outright takes its task
# with it until the visibility timeout below; the claim lease finds it sooner.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Batches are long and uneven: take one at a time, so an idle process can take the next.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged task after this many seconds. It must outlast the
# longest batch and the longest retry countdown (an hour, see mailing.retry.backoff),
# or a slow batch would run twice (harmless for sending, but wasted work).
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = 2 * 3600

# Paperboy --------------------------------------------------------------------
# Feeds fetched by the "Import paper feeds" periodic task (edit its schedule in
# the admin; papers.feeds). Each URL is a trending page, HF daily-papers JSON or arXiv
# Atom. Unset: Hugging Face's daily papers, today's and trending; empty: none.
HF_DAILY_PAPERS = "https://huggingface.co/api/daily_papers"
PAPERBOY_FEED_URLS = env.http_urls(
    "PAPERBOY_FEED_URLS",
    default=[f"{HF_DAILY_PAPERS}?limit=100", f"{HF_DAILY_PAPERS}?sort=trending&limit=100"],
)
# arXiv categories (cs.LG, cs.CL, ...) whose newest papers are imported too.
PAPERBOY_ARXIV_CATEGORIES = env.arxiv_categories("PAPERBOY_ARXIV_CATEGORIES")
# Seconds for a whole fetch, redirects included (core.fetch).
PAPERBOY_FETCH_TIMEOUT = env.int("PAPERBOY_FETCH_TIMEOUT", 30, min_value=1)
# An interest topic nobody follows any more (and no curator touched) is deleted after
# this many days (task "Prune unfollowed interests").
PAPERBOY_INTEREST_GRACE_DAYS = env.int("PAPERBOY_INTEREST_GRACE_DAYS", 7, min_value=0)
# Host names and networks (CIDR) a feed may be fetched from though they are not public
# addresses: a feed on the intranet. Nothing else private is ever fetched.
PAPERBOY_FETCH_ALLOW = env.list("PAPERBOY_FETCH_ALLOW")
PAPERBOY_MAX_IMPORT_BYTES = env.int("PAPERBOY_MAX_IMPORT_BYTES", 20_000_000, min_value=1)

# How long a sending run answers for its digests (seconds); it renews the lease every
# third of it as the batch goes, so this must outlast one message, not a batch. A digest
# whose run stopped renewing (a worker killed outright), or one that waited for its first
# run past the lease while nothing waits in the queue (the broker lost it), is queued
# again by the next scheduling pass; one left "sending" is recorded as unknown.
PAPERBOY_CLAIM_LEASE = env.int("PAPERBOY_CLAIM_LEASE", 600, min_value=1)
# The first retry of a failed send waits up to this many seconds, doubling each time
# (full jitter, at most an hour).
PAPERBOY_RETRY_DELAY = env.int("PAPERBOY_RETRY_DELAY", 30, min_value=0)
# Retries of a digest that keeps failing transiently before it is given up as failed.
PAPERBOY_SEND_RETRIES = env.int("PAPERBOY_SEND_RETRIES", 8, min_value=0)
# Messages each worker process has in flight at once, each over a connection of its own
# (digest.pacing): a mail server or ESP 20 ms away answers each after a round trip. Above
# 1, a worker killed outright may lose a digest that its thread had recorded "sending"
# but not yet handed over while another thread held the interpreter (README, Guarantees).
PAPERBOY_SEND_CONCURRENCY = env.int("PAPERBOY_SEND_CONCURRENCY", 1, min_value=1)
# At most this many messages per second from all processes together (an ESP's quota);
# 0 for no cap. Counted in Redis, or in the database without it.
PAPERBOY_SEND_RATE = env.int("PAPERBOY_SEND_RATE", 0, min_value=0)

# A paper belongs to a topic when its score reaches this (see papers/matching.py).
PAPERBOY_MATCH_THRESHOLD = env.float("PAPERBOY_MATCH_THRESHOLD", 1.0)

# Matching by meaning (papers/embeddings.py): the default model, "off", or a folder
# holding model.onnx and tokenizer.json. Changing it re-embeds in the background.
PAPERBOY_EMBEDDING_MODEL = env.str("PAPERBOY_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
# What decides a match: both kinds of evidence (the default), or one alone (for
# comparison: python -m bench.relevance reports all three).
PAPERBOY_MATCHING = env.str("PAPERBOY_MATCHING", "both").lower()
if PAPERBOY_MATCHING not in {"both", "lexical", "semantic"}:
    raise ImproperlyConfigured("PAPERBOY_MATCHING: expected both, lexical or semantic")
PAPERBOY_EMBEDDING_POOLING = env.str("PAPERBOY_EMBEDDING_POOLING", "mean").lower()
if PAPERBOY_EMBEDDING_POOLING not in {"mean", "cls"}:
    raise ImproperlyConfigured("PAPERBOY_EMBEDDING_POOLING: expected mean or cls")
PAPERBOY_EMBEDDING_MAX_TOKENS = env.int("PAPERBOY_EMBEDDING_MAX_TOKENS", 256, min_value=16)
# One thread per worker process: the worker runs one process per core already.
PAPERBOY_EMBEDDING_THREADS = env.int("PAPERBOY_EMBEDDING_THREADS", 1, min_value=1)
# Where `manage.py prepare_embeddings` (make install) puts the prepared default model:
# part of the installation, like the virtualenv, so not under PAPERBOY_VAR_DIR.
PAPERBOY_MODEL_DIR = Path(env.str("PAPERBOY_MODEL_DIR") or BASE_DIR / "var" / "models")

# Signup abuse limits, counted in the cache (Redis in production).
PAPERBOY_SIGNUPS_PER_IP_PER_HOUR = env.int("PAPERBOY_SIGNUPS_PER_IP_PER_HOUR", 20, min_value=1)
PAPERBOY_SIGNUPS_PER_ADDRESS_PER_HOUR = env.int(
    "PAPERBOY_SIGNUPS_PER_ADDRESS_PER_HOUR", 3, min_value=1
)
# How many reverse proxies in front of the web server append to X-Forwarded-For.
PAPERBOY_TRUSTED_PROXIES = env.int("PAPERBOY_TRUSTED_PROXIES", 0, min_value=0)
# The mailto: form of List-Unsubscribe (routed to the inbound webhook in production).
PAPERBOY_UNSUBSCRIBE_MAILTO = env.str(
    "PAPERBOY_UNSUBSCRIBE_MAILTO", f"unsubscribe@{urlsplit(SITE_URL).hostname}"
)

# Soft bounces (deferrals) suppress an address once this many arrive within the window.
PAPERBOY_SOFT_BOUNCE_LIMIT = env.int("PAPERBOY_SOFT_BOUNCE_LIMIT", 5, min_value=1)
PAPERBOY_SOFT_BOUNCE_WINDOW_DAYS = env.int("PAPERBOY_SOFT_BOUNCE_WINDOW_DAYS", 7, min_value=1)
# Above this share of complaints per delivered message, admins see a warning.
PAPERBOY_COMPLAINT_RATE_WARNING = 0.001

# Security --------------------------------------------------------------------
# Kept together here, so the middleware and the context processor are added below
# rather than in the lists above.
from django.utils.csp import CSP  # noqa: E402

# The same policy in development and production: a page it breaks breaks on a developer's
# machine and in the browser tests first. Nothing inline runs or applies without the
# request's nonce: Paperboy's pages only load their own static files, and the admin's
# inline scripts and styles carry the nonce (templates/admin/djcelery/ adds it to
# django-celery-beat's form). Pages that show an email set their own, stricter policy.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
)
TEMPLATES[0]["OPTIONS"]["context_processors"].append("django.template.context_processors.csp")
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    # data: for the empty favicon in base.html, which spares a request for /favicon.ico.
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Manage, unsubscribe, feedback and view-in-browser URLs carry tokens: a link followed
# from those pages (to arXiv, say) must not hand them to another site.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO").upper()},
}

if not DEBUG:
    # SITE_URL says whether the site is served over https (behind a proxy that terminates
    # TLS and sets X-Forwarded-Proto); a plain-http deployment such as docker-compose's
    # default keeps working without any of the https-only settings below.
    _HTTPS = SITE_URL.startswith("https://")
    SESSION_COOKIE_SECURE = _HTTPS
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    CSRF_TRUSTED_ORIGINS = [SITE_URL]
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_HTTPS)
    # Health checks (docker-compose's, a load balancer's) ask the app itself over plain
    # http; a redirect to https there would mark a healthy container as down.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    # Browsers then refuse plain http for a year. Subdomains and preload are on, as
    # `check --deploy` asks; an operator with plain-http subdomains turns them off.
    SECURE_HSTS_SECONDS = env.int(
        "SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _HTTPS else 0, min_value=0
    )
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
