"""Fixed-window rate limits in the Django cache (Redis in production)."""

import hashlib
import ipaddress
import time

from django.conf import settings
from django.core.cache import cache


def exceeded(scope: str, identity: str, limit: int, window: int = 3600) -> bool:
    """Count one attempt for ``identity``; True once it is over ``limit`` in this window."""
    # Hash the identity so that addresses never sit in the cache in clear.
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    key = f"ratelimit:{scope}:{digest}:{int(time.time() // window)}"
    if cache.add(key, 1, window):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # the key expired between add() and incr()
            cache.set(key, 1, window)
            count = 1
    return count > limit


def network(ip: str) -> str:
    """What a per-IP limit counts: an IPv6 client by its /64, which one subscriber
    line usually gets whole (rotating addresses within it is free), an IPv4 client by
    its address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def client_ip(request) -> str:
    """The client's address, trusting X-Forwarded-For only as far as our own proxies."""
    proxies = settings.PAPERBOY_TRUSTED_PROXIES
    if proxies:
        forwarded = [ip.strip() for ip in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [ip for ip in forwarded if ip]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")
