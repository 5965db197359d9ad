from django.contrib import admin
from django.urls import include, path

from digest import views

digest_patterns = [
    path("feedback/<str:token>/", views.feedback, name="feedback"),
    path("digests/<str:token>/", views.view_digest, name="view"),
]

urlpatterns = [
    path("", views.trending, name="trending"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # ESP webhooks: /anymail/<esp>/tracking/ and /anymail/<esp>/inbound/.
    path("anymail/", include("subscriptions.webhooks")),
    path("", include((digest_patterns, "digest"))),
    path("", include("subscriptions.urls")),
]
