"""Fetching a feed by URL without letting the URL reach inside the network.

Whoever may import papers (a curator, or the operator's feed list) names a URL and the
server fetches it: without care that is a way to read loopback services, the cloud's
metadata address (169.254.169.254) or private hosts, directly or by redirect, and to
scan ports by the errors. So:

- only http and https, at every hop;
- the host is resolved here, every address it resolves to must be public (not
  loopback, private, link-local, multicast, reserved or unspecified), and the socket
  connects to that vetted address and is checked again once connected, so DNS cannot
  answer one address to the check and another to the connection;
- redirects are followed by hand (at most MAX_REDIRECTS), each one vetted the same way;
- one deadline for the whole fetch, redirects and a slow trickle included, and the
  size cap while reading;
- every failure reads the same to the user ("could not fetch …"); the reason is logged
  for the operator.

Feeds on internal hosts stay possible: PAPERBOY_FETCH_ALLOW lists the host names and
networks that may be private.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

from django.conf import settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024


class FetchFailed(Exception):
    """The URL could not be fetched; the message is the same whatever the reason."""


class _Refused(Exception):
    """Why a fetch was refused or failed: for the log, never for the user."""


def _allowed(host: str, address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    if ip.is_global and not ip.is_multicast:
        return True
    for entry in settings.PAPERBOY_FETCH_ALLOW:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if host.casefold().rstrip(".") == entry.casefold().rstrip("."):
                return True
    return False


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _Refused(f"{host} does not resolve: {exc}") from exc
    addresses = [info[4][0] for info in found]
    refused = [address for address in addresses if not _allowed(host, address)]
    if refused or not addresses:
        raise _Refused(f"{host} resolves to an address that is not public: {refused}")
    family, kind, proto, _, sockaddr = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        if not _allowed(host, sock.getpeername()[0]):
            raise _Refused(f"{host} connected to {sock.getpeername()[0]}")
    except BaseException:
        sock.close()
        raise
    return sock


# Each keeps its socket as ``vetted`` too: http.client lets go of ``sock`` as soon as
# the response says the connection will close, and the deadline applies while reading.
class _HTTPConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = self.vetted = _connect(self.host, self.port, self.timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self):
        sock = _connect(self.host, self.port, self.timeout)
        try:
            self.sock = self.vetted = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Refused("the deadline passed")
    return left


def _get(url: str, deadline: float, limit: int) -> tuple[int, str | None, bytes]:
    """(status, Location, body) of one GET, the body read only for a 200."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise _Refused(f"not an http(s) URL: {url!r}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    kind = _HTTPSConnection if https else _HTTPConnection
    connection = kind(parts.hostname, port, timeout=_remaining(deadline))
    response = None
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", path, headers={"User-Agent": "Paperboy paper importer"})
        response = connection.getresponse()
        if response.status != 200:
            return response.status, response.getheader("Location"), b""
        chunks, size = [], 0
        while size <= limit and not response.isclosed():
            connection.vetted.settimeout(_remaining(deadline))
            # read1, not read: read(n) waits for all n bytes, a trickle at a time.
            chunk = response.read1(min(CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return 200, None, b"".join(chunks)
    finally:
        if response is not None:
            response.close()
        connection.close()
        if getattr(connection, "vetted", None) is not None:
            connection.vetted.close()  # the response may have held the last reference


def fetch(url: str, limit: int) -> bytes:
    """The body of ``url`` (at most ``limit`` + 1 bytes, for the caller to refuse),
    following redirects; FetchFailed whatever goes wrong."""
    deadline = time.monotonic() + settings.PAPERBOY_FETCH_TIMEOUT
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = _get(current, deadline, limit)
            if status == 200:
                return body
            if status not in REDIRECTS or not location:
                raise _Refused(f"{current} answered {status}")
            current = urljoin(current, location)
        raise _Refused(f"more than {MAX_REDIRECTS} redirects")
    except (_Refused, OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
        log.info("fetching %s failed at %s: %s", url, current, exc)
        raise FetchFailed(f"could not fetch {url}") from None
