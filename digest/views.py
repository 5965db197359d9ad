"""The pages a digest links to: the 👍/👎 vote, and the digest in a browser."""

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from digest import links, rendering
from digest.feedback import record_feedback
from digest.models import Digest
from papers.models import Paper
from subscriptions.models import Subscriber


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
    rendered = rendering.render_sent_digest(digest, web=True) if digest is not None else None
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
