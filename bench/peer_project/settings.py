"""The smallest Django project that runs django-newsletter, for bench.peer.

It runs in a throwaway virtualenv outside Paperboy's dependencies; the bench passes the
database and the SMTP sink's port in the environment."""

import os

SECRET_KEY = "bench-peer-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
SITE_ID = 1
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sites",
    "newsletter",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["PEER_DATABASE"],
        "HOST": "127.0.0.1",
        "USER": "postgres",
    }
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
ROOT_URLCONF = "urls"
# django-newsletter sends with Django's default connection: plain SMTP to the sink.
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ["PEER_SMTP_PORT"])
DEFAULT_FROM_EMAIL = "newsletter@bench.example"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
