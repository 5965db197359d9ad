from django.contrib import admin

DASHBOARD_PERMISSIONS = ("subscriptions.view_subscriber", "digest.view_digest")


class PaperboyAdminSite(admin.AdminSite):
    site_header = "Paperboy"
    site_title = "Paperboy admin"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        # Imported here: this module is loaded while the app registry is being built.
        from paperboy import dashboard

        context = dict(extra_context or {})
        # The figures count subscribers and deliveries: only for those who may see them.
        if request.user.has_perms(DASHBOARD_PERMISSIONS):
            context["dashboard"] = dashboard.figures()
        return super().index(request, context)
