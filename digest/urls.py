from django.urls import path

from digest import views

app_name = "digest"

urlpatterns = [
    path("feedback/<str:token>/", views.feedback, name="feedback"),
    path("digests/<str:token>/", views.view_digest, name="view"),
]
