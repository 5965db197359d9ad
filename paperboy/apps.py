from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PaperboyConfig(AppConfig):
    """The project: its admin site and dashboard, the front page, static files."""

    default = True
    name = "paperboy"
    verbose_name = "Paperboy"


class PaperboyAdminConfig(admin_apps.AdminConfig):
    """The admin, with the dashboard on its front page."""

    default = False
    default_site = "paperboy.sites.PaperboyAdminSite"
