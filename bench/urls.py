from django.http import HttpResponse
from django.urls import path

from digest.urls import urlpatterns as paperboy_urlpatterns


def minimal(request):
    # Through the same middleware as every page: the baseline is Django itself, not a socket.
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("bench/minimal", minimal), *paperboy_urlpatterns]
