"""Inside the peer virtualenv: build a newsletter for N subscribers and send it the way
django-newsletter does (Submission.submit()); print the seconds it took."""

import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402
from newsletter.models import Article, Message, Newsletter, Submission, Subscription  # noqa: E402

subscribers = int(sys.argv[1])
call_command("migrate", verbosity=0)
newsletter = Newsletter.objects.create(
    title="Trending papers", slug="papers", email="newsletter@bench.example", sender="Bench"
)
Subscription.objects.bulk_create(
    Subscription(
        newsletter=newsletter,
        email_field=f"peer{n}@bench.example",
        name_field=f"Reader {n}",
        subscribed=True,
        subscribe_date=timezone.now(),
    )
    for n in range(subscribers)
)
message = Message.objects.create(title="Your papers", slug="papers", newsletter=newsletter)
words = ("We study sparse attention for long contexts and find it helps " * 6).split()[:60]
for n in range(10):
    Article.objects.create(
        post=message,
        sortorder=n,
        title=f"A trending paper on sparse attention, part {n}",
        text=" ".join(words),
        url=f"https://arxiv.org/abs/2611.{n:05d}",
    )
submission = Submission.from_message(message)
submission.publish_date = timezone.now() - timezone.timedelta(seconds=1)
submission.save()
started = time.perf_counter()
submission.submit()
print(json.dumps({"seconds": time.perf_counter() - started}))
