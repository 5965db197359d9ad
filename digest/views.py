from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from digest import emails, links
from digest.compose import record_feedback
from digest.models import Digest, Paper, PaperTopic, Topic
from subscriptions.forms import SignupForm
from subscriptions.models import Subscriber

PAPERS_PER_PAGE = 25


def trending(request):
    topics = list(Topic.objects.curated())
    topic = next((t for t in topics if t.slug == request.GET.get("topic")), None)
    papers = Paper.objects.trending()
    if topic is not None:
        # The stored matches, curators' pins and exclusions included.
        papers = papers.filter(
            pk__in=PaperTopic.objects.matching().filter(topic=topic).values("paper")
        )
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


def _bad_link(request):
    return render(request, "subscriptions/bad_link.html", {"expired": False}, status=404)


@require_http_methods(["GET", "HEAD", "POST"])
def feedback(request, token):
    """👍/👎 from a digest. A GET only shows the vote chosen and one button: link
    scanners (Safe Links, corporate gateways, some webmail) open every link in a mail,
    and would cast both votes for every paper. The button's POST records it, idempotent."""
    data = links.read(token, links.FEEDBACK_SALT)
    if data is None or data.get("v") not in (1, -1):
        return _bad_link(request)
    subscriber = Subscriber.objects.filter(key=data.get("s")).first()
    paper = Paper.objects.filter(pk=data.get("p")).first() if subscriber else None
    if paper is None:
        return _bad_link(request)
    recorded = request.method == "POST"
    if recorded:
        record_feedback(subscriber, paper, data["v"])
    context = {"paper": paper, "vote": data["v"], "recorded": recorded}
    return render(request, "digest/feedback.html", context)


def view_digest(request, token):
    """The digest as it was mailed, for readers whose mail client mangles it."""
    data = links.read(token, links.VIEW_SALT)
    digest = None
    if data is not None:
        digest = (
            Digest.objects.select_related("subscriber")
            .filter(pk=data.get("d"), subscriber__key=data.get("s"))
            .first()
        )
    # Without the manage, unsubscribe and vote links: anyone this page's address is
    # shared with would get control of the subscription.
    rendered = emails.render_sent_digest(digest, web=True) if digest is not None else None
    if rendered is None:
        return _bad_link(request)
    response = HttpResponse(rendered[2])
    # The email's styles are inline (mail clients need them so) and it shows text from
    # paper feeds on this site's origin: nothing may load and no script run. The CSP
    # middleware keeps a policy the view set.
    response["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    return response
