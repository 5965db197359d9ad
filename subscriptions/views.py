import json

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from papers.models import Topic
from papers.topics import previews_context
from subscriptions import ratelimit, services, states
from subscriptions.forms import PreferencesForm, SignupForm
from subscriptions.links import manage_url
from subscriptions.models import Subscriber
from subscriptions.tokens import BadToken, Purpose, make_token, read_token


def _bad_link(request, error: BadToken):
    status = 400 if error.expired else 404
    return render(request, "subscriptions/bad_link.html", {"expired": error.expired}, status=status)


def with_subscriber(purpose: Purpose):
    """Resolve the token in the URL to a subscriber, or answer with a clear error page."""

    def decorator(view):
        def wrapper(request, token, *args, **kwargs):
            try:
                subscriber = read_token(token, purpose)
            except BadToken as error:
                return _bad_link(request, error)
            return view(request, subscriber, token, *args, **kwargs)

        wrapper.__name__ = view.__name__
        wrapper.__doc__ = view.__doc__
        return wrapper

    return decorator


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.method == "GET":
        return render(request, "subscriptions/signup.html", {"form": SignupForm()})
    form = SignupForm(request.POST)
    ip = ratelimit.client_ip(request)
    limit = settings.PAPERBOY_SIGNUPS_PER_IP_PER_HOUR
    if ratelimit.exceeded("signup-ip", ratelimit.network(ip), limit):
        form.add_error(None, "Too many sign-ups from your network. Please try again in an hour.")
        return render(request, "subscriptions/signup.html", {"form": form}, status=429)
    if not form.is_valid():
        return render(request, "subscriptions/signup.html", {"form": form}, status=400)
    if form.is_bot:
        return redirect("subscriptions:check_inbox")
    email = form.cleaned_data["email"].lower()
    if ratelimit.exceeded("signup-address", email, settings.PAPERBOY_SIGNUPS_PER_ADDRESS_PER_HOUR):
        form.add_error(
            None, "We sent several emails to this address already. Please check your inbox."
        )
        return render(request, "subscriptions/signup.html", {"form": form}, status=429)
    services.sign_up(form.cleaned_data)
    return redirect("subscriptions:check_inbox")


def check_inbox(request):
    return render(request, "subscriptions/check_inbox.html")


@require_http_methods(["GET", "POST"])
@with_subscriber(Purpose.CONFIRM)
def confirm(request, subscriber, token):
    # A GET only shows a button: mail scanners open links, and must not subscribe anyone.
    if request.method == "POST":
        services.confirm(
            subscriber, ratelimit.client_ip(request), request.headers.get("User-Agent", "")
        )
        return redirect("subscriptions:confirmed", token=token)
    if subscriber.status != Subscriber.Status.PENDING:
        return redirect("subscriptions:confirmed", token=token)
    return render(request, "subscriptions/confirm.html", {"subscriber": subscriber})


def _previews(subscriber) -> dict:
    return previews_context(subscriber.topics.order_by("name"))


@with_subscriber(Purpose.CONFIRM)
def confirmed(request, subscriber, token):
    context = {"subscriber": subscriber, "manage_url": manage_url(subscriber)}
    return render(request, "subscriptions/confirmed.html", context | _previews(subscriber))


def _initial(subscriber) -> dict:
    topics = list(subscriber.topics.all())
    return {
        "topics": [t for t in topics if t.kind == Topic.Kind.CURATED],
        "interests": ", ".join(services.interest_names(subscriber, topics)),
        **{name: getattr(subscriber, name) for name in services.PREFERENCE_FIELDS},
    }


@require_http_methods(["GET", "POST"])
@with_subscriber(Purpose.MANAGE)
def manage(request, subscriber, token):
    saved = request.GET.get("saved") == "1"
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            services.apply_preferences(subscriber, form.cleaned_data)
            return redirect(request.path + "?saved=1")
        status = 400
    else:
        form, status = PreferencesForm(initial=_initial(subscriber)), 200
    context = {
        "subscriber": subscriber,
        "form": form,
        "token": token,
        "saved": saved,
        "unsubscribe_url": reverse(
            "subscriptions:unsubscribe", args=[make_token(subscriber, Purpose.UNSUBSCRIBE)]
        ),
        **_previews(subscriber),
    }
    return render(request, "subscriptions/manage.html", context, status=status)


@require_POST
@with_subscriber(Purpose.MANAGE)
def pause(request, subscriber, token):
    states.pause(subscriber)
    return redirect("subscriptions:manage", token=token)


@require_POST
@with_subscriber(Purpose.MANAGE)
def resume(request, subscriber, token):
    states.resume(subscriber)
    return redirect("subscriptions:manage", token=token)


@with_subscriber(Purpose.MANAGE)
def export(request, subscriber, token):
    body = json.dumps(services.export(subscriber), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    filename = f"paperboy-{slugify(subscriber.email) or 'data'}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_http_methods(["GET", "POST"])
@with_subscriber(Purpose.MANAGE)
def delete(request, subscriber, token):
    if request.method == "POST":
        services.delete(subscriber)
        return render(request, "subscriptions/deleted.html")
    return render(request, "subscriptions/delete.html", {"subscriber": subscriber})


# No CSRF token: RFC 8058 one-click POSTs come from mail providers with no cookies, and the
# signed token in the URL already proves the request came from the subscriber's mail.
@csrf_exempt
@require_http_methods(["GET", "POST"])
@with_subscriber(Purpose.UNSUBSCRIBE)
def unsubscribe(request, subscriber, token):
    if request.method == "POST":
        states.unsubscribe(subscriber)
        return render(request, "subscriptions/unsubscribed.html", {"subscriber": subscriber})
    # A GET changes nothing: link scanners must not unsubscribe anyone.
    return render(request, "subscriptions/unsubscribe.html", {"subscriber": subscriber})
