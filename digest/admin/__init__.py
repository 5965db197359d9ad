"""The curators' admin: importing modules registers their ModelAdmins."""

from digest.admin import delivery, papers  # noqa: F401
