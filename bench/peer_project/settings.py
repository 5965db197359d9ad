"""The smallest Django project that runs django-newsletter, for bench.peer.

It runs in a throwaway virtualenv outside Paperboy's dependencies; bench.peer passes
the database and the SMTP sink's port in the environment. The apps are the ones
django-newsletter's installation docs list, less the admin and a rich-text editor,
which sending does not touch."""

import os
from urllib.parse import unquote, urlsplit

_database = urlsplit(os.environ["PEER_DATABASE_URL"])

SECRET_KEY = "bench-peer-" + "x" * 40
# DEBUG would keep every query in memory and slow the sender down: a production setting.
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
SITE_ID = 1
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    # Its first migration imports sorl-thumbnail, and its message templates include a
    # thumbnail template for articles with images (none here).
    "sorl.thumbnail",
    "newsletter",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _database.path.lstrip("/"),
        "HOST": _database.hostname or "",
        "PORT": _database.port or "",
        "USER": unquote(_database.username or ""),
        "PASSWORD": unquote(_database.password or ""),
    }
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
# The message templates reverse the unsubscribe and archive URLs.
ROOT_URLCONF = "urls"
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
# django-newsletter sends through Django's default mailer: plain SMTP, here to the sink,
# configured as Paperboy's is (Django 6.1 deprecates the EMAIL_* settings).
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {"host": "127.0.0.1", "port": int(os.environ["PEER_SMTP_PORT"]), "timeout": 30},
    }
}
DEFAULT_FROM_EMAIL = "newsletter@bench.example"
# Both are read at import and warn when unset; these are its defaults.
NEWSLETTER_THUMBNAIL = "sorl-thumbnail"
NEWSLETTER_USE_HTTPS = True
