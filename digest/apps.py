from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DigestConfig(AppConfig):
    default = True
    name = "digest"
    verbose_name = "Papers and digests"

    def ready(self):
        from digest import signals

        signals.connect()


class PaperboyAdminConfig(admin_apps.AdminConfig):
    """The admin, with the dashboard on its front page."""

    default = False
    default_site = "digest.sites.PaperboyAdminSite"
