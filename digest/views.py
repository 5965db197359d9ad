from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from digest.models import Paper, Topic
from subscriptions.forms import SignupForm

PAPERS_PER_PAGE = 25


def _matching(papers, topic: Topic):
    # Until papers are scored against topics, a topic filters by its terms.
    condition = Q()
    for term in topic.term_list:
        condition |= Q(title__icontains=term) | Q(abstract__icontains=term)
    return papers.filter(condition) if condition else papers.none()


def trending(request):
    topics = list(Topic.objects.curated())
    topic = next((t for t in topics if t.slug == request.GET.get("topic")), None)
    papers = Paper.objects.trending()
    if topic is not None:
        papers = _matching(papers, topic)
    page = Paginator(papers, PAPERS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "topics": topics, "topic": topic, "signup_form": SignupForm()}
    return render(request, "digest/trending.html", context)


@never_cache
def healthz(request):
    """Liveness for load balancers and docker-compose: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any database failure means "unhealthy", never a 500 page
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    return JsonResponse({"status": "ok"})
