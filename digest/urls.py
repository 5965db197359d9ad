from django.contrib import admin
from django.urls import include, path

from digest import views

admin.site.site_header = "Paperboy"
admin.site.site_title = "Paperboy admin"
admin.site.index_title = "Curation"

urlpatterns = [
    path("", views.trending, name="trending"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("subscriptions.urls")),
]
