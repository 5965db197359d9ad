from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.http import require_POST

from paperboy.urls import urlpatterns as paperboy_urlpatterns
from subscriptions.models import Subscriber


def minimal(request):
    # Through the same middleware as every page: the baseline is Django itself, not a socket.
    return HttpResponse("ok", content_type="text/plain")


@require_POST
def one_insert(request):
    """The least any sign-up must do: take the same POST (CSRF checked by the same
    middleware), write one row, redirect. No validation, no topics, no email queued."""
    Subscriber.objects.create(email=request.POST["email"])
    return HttpResponseRedirect("/check-your-inbox/")


urlpatterns = [
    path("bench/minimal", minimal),
    path("bench/one-insert", one_insert),
    *paperboy_urlpatterns,
]
