from django.urls import path

from subscriptions import views

app_name = "subscriptions"

urlpatterns = [
    path("subscribe/", views.signup, name="signup"),
    path("subscribe/check-your-inbox/", views.check_inbox, name="check_inbox"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("confirm/<str:token>/done/", views.confirmed, name="confirmed"),
    path("manage/<str:token>/", views.manage, name="manage"),
    path("manage/<str:token>/pause/", views.pause, name="pause"),
    path("manage/<str:token>/resume/", views.resume, name="resume"),
    path("manage/<str:token>/export.json", views.export, name="export"),
    path("manage/<str:token>/delete/", views.delete, name="delete"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
