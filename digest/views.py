from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from digest.models import Paper

PAPERS_PER_PAGE = 25


def trending(request):
    page = Paginator(Paper.objects.trending(), PAPERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "digest/trending.html", {"page": page})


@never_cache
def healthz(request):
    """Liveness for load balancers and docker-compose: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any database failure means "unhealthy", never a 500 page
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    return JsonResponse({"status": "ok"})
