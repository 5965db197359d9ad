from django.contrib import admin


class PaperboyAdminSite(admin.AdminSite):
    site_header = "Paperboy"
    site_title = "Paperboy admin"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        # Imported here: this module is loaded while the app registry is being built.
        from digest import dashboard

        context = {"dashboard": dashboard.figures(), **(extra_context or {})}
        return super().index(request, context)
