"""Paperboy's settings plus one minimal view, the baseline bench.signup compares against."""

from paperboy.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
