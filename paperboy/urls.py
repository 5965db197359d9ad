from django.contrib import admin
from django.urls import include, path

from paperboy import views

urlpatterns = [
    path("", views.trending, name="trending"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # ESP webhooks: /anymail/<esp>/tracking/ and /anymail/<esp>/inbound/.
    path("anymail/", include("subscriptions.webhooks")),
    path("", include("digest.urls")),
    path("", include("subscriptions.urls")),
]
