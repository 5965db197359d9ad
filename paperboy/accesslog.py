"""gunicorn's access log without the signed tokens that Paperboy's URLs carry: whoever
reads the log must not be able to confirm, manage or unsubscribe for a reader."""

import re

from gunicorn.glogging import Logger

# Paths whose next segment is a signed token (subscriptions.urls, paperboy.urls).
_TOKEN = re.compile(r"(/(?:confirm|manage|unsubscribe|feedback|digests)/)[^/?#\s]+")


def redact(text):
    return _TOKEN.sub(r"\1[token]", text) if isinstance(text, str) else text


class AccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # Every atom: the request line and path, the Referer (our own pages link to one
        # another) and the request headers and WSGI environ a format may name.
        return {name: redact(value) for name, value in atoms.items()}
