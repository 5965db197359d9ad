"""The front page (trending papers, and the sign-up form) and the health check."""

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from papers.models import Paper, PaperTopic, Topic
from subscriptions.forms import SignupForm

PAPERS_PER_PAGE = 25


def trending(request):
    topics = list(Topic.objects.curated())
    topic = next((t for t in topics if t.slug == request.GET.get("topic")), None)
    # Any other value (a typo, an old link) shows every paper rather than an error.
    with_code = request.GET.get("code") == "1"
    papers = Paper.objects.trending()
    if topic is not None:
        # The stored matches, curators' pins and exclusions included.
        papers = papers.filter(
            pk__in=PaperTopic.objects.matching().filter(topic=topic).values("paper")
        )
    if with_code:
        papers = papers.with_code()
    page = Paginator(papers, PAPERS_PER_PAGE).get_page(request.GET.get("page"))
    # The filters in force, as the pagination links carry them on: only values that
    # filtered, so a bad one is not passed from page to page.
    filters = {"topic": topic.slug if topic else "", "code": "1" if with_code else ""}
    context = {
        "page": page,
        "topics": topics,
        "topic": topic,
        "with_code": with_code,
        "filters": urlencode({name: value for name, value in filters.items() if value}),
        "signup_form": SignupForm(),
    }
    return render(request, "trending.html", context)


@never_cache
def healthz(request):
    """Liveness for load balancers and docker-compose: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any database failure means "unhealthy", never a 500 page
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    return JsonResponse({"status": "ok"})
