"""A digest's subject, text and HTML, and the message that carries them.

Each paper's block and the frame around it are rendered and CSS-inlined once per
process; what differs between readers is filled into slots per message.
"""

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from functools import cache, lru_cache

import css_inline
from django.conf import settings
from django.core import mail
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from digest import links as digest_links
from digest.picks import Pick
from mailing.message import Outgoing, outgoing, site_domain
from subscriptions import links

# How much of a paper's text a digest shows; the rest is a link away. They keep a
# digest of 20 papers under Gmail's 102 kB clipping (tests/digest/test_rendering.py).
SNIPPET_WORDS = 60
SUMMARY_WORDS = 60


@cache
def _inliner() -> css_inline.CSSInliner:
    # Keep the <style> block too: clients that support media queries (dark mode,
    # narrow screens) use it, the others use the inlined styles.
    return css_inline.CSSInliner(keep_style_tags=True)


# What differs between readers (links, reasons, positions) is left as a slot when the
# shared parts are rendered and inlined, once per process, and filled in per message.
# The nonce keeps any paper's own text from ever looking like a slot.
_NONCE = secrets.token_hex(8)
_SLOT = re.compile(f"pb{_NONCE}(up|down|reason|position|view|manage|unsubscribe|papers)")


def _slot(name: str) -> str:
    return f"pb{_NONCE}{name}"


def _fill(template: str, values: dict[str, str]) -> str:
    # One pass: text put into a slot is never scanned for slots itself.
    return _SLOT.sub(lambda match: values[match.group(1)], template)


@cache
def _css() -> str:
    return render_to_string("emails/digest.css")


@dataclass(frozen=True, slots=True)
class Shown:
    """What a digest shows of a paper, and so the cache key of its block: hashable
    values only, never the Paper (whose equality is its primary key)."""

    title: str
    url: str
    authors: str
    summary: str
    abstract: str  # only when there is no summary: the snippet is made from it
    upvotes: int
    featured: bool
    pdf_url: str = ""
    code_url: str = ""
    code_stars: int | None = None
    project_url: str = ""

    @classmethod
    def of(cls, paper) -> "Shown":
        summary = " ".join(paper.ai_summary.split())
        return cls(
            title=paper.title,
            url=paper.url,
            authors=paper.short_authors,
            summary=summary,
            abstract="" if summary else paper.abstract,
            upvotes=paper.upvotes,
            featured=paper.featured,
            pdf_url=paper.pdf_link,
            code_url=paper.code_url,
            code_stars=paper.code_stars,
            project_url=paper.project_url,
        )


def _stars(count: int | None) -> str:
    """A repository's stars in words, "1,234 stars"; "" when the source gave none."""
    if count is None:
        return ""
    return f"{count:,} star{'' if count == 1 else 's'}"


def _paper_context(shown: Shown) -> dict:
    """What the paper templates show of a paper: the abstract's first words, or the AI
    summary and a link to the abstract; then the PDF, the code and the project page,
    those the sources gave."""
    sources = [
        {"label": label, "href": href, "note": note}
        for label, href, note in [
            ("PDF", shown.pdf_url, ""),
            ("Code", shown.code_url, _stars(shown.code_stars)),
            ("Project page", shown.project_url, ""),
        ]
        if href
    ]
    abstract = [{"label": "Abstract", "href": shown.url, "note": ""}] if shown.summary else []
    return {
        "title": shown.title,
        "url": shown.url,
        "authors": Truncator(shown.authors).chars(160),
        "summary": Truncator(shown.summary).words(SUMMARY_WORDS),
        "snippet": Truncator(shown.abstract).words(SNIPPET_WORDS),
        "upvotes": shown.upvotes,
        "featured": shown.featured,
        "links": abstract + sources,
        # In the text part, the address under the title is the abstract's.
        "text_links": sources,
    }


@lru_cache(maxsize=4096)
def _paper_parts(shown: Shown, web: bool = False) -> tuple[str, str]:
    """One paper's block, HTML (styles inlined) and text, with the reader's slots;
    ``web``: without the votes, for the page anyone with its address may see."""
    context = {
        "web": web,
        "paper": _paper_context(shown),
        "reason": _slot("reason"),
        "up_url": _slot("up"),
        "down_url": _slot("down"),
        "position": _slot("position"),
    }
    html = render_to_string("emails/digest-paper.html", context)
    return _inliner().inline_fragment(html, _css()), render_to_string(
        "emails/digest-paper.txt", context
    )


@lru_cache(maxsize=1024)
def _frame_parts(
    date: dt.date, weekly: bool, count: int, first_title: str, site_url: str, web: bool = False
) -> tuple[str, str, str]:
    """Subject, and the HTML and text around the papers, with the reader's slots;
    ``web``: without the manage and unsubscribe links."""
    context = {
        "web": web,
        "date": date,
        "weekly": weekly,
        "count": count,
        "first_title": first_title,
        "site_url": site_url,
        "view_url": _slot("view"),
        "manage_url": _slot("manage"),
        "unsubscribe_url": _slot("unsubscribe"),
        "papers_html": mark_safe(_slot("papers")),  # noqa: S308 - our own slot
        "papers_text": _slot("papers"),
    }
    subject = " ".join(render_to_string("emails/digest-subject.txt", context).split())
    html = _inliner().inline(render_to_string("emails/digest-body.html", context))
    return subject, render_to_string("emails/digest-body.txt", context), html


def render_digest(
    digest, picks, reasons: list[str] | None = None, *, web: bool = False
) -> tuple[str, str, str]:
    """Subject, text and HTML of a digest. ``reasons`` replaces each pick's reason,
    for a digest shown again from its ledger. ``web``: the HTML for the view-in-browser
    page, without the links that act for the reader (votes, manage, unsubscribe): its
    address gets shared.

    Each paper's block and the frame around them are rendered and inlined once per
    process (the cache keys are what they show), so a message costs the signing of
    its links and some string joins, not a template render and a CSS inlining pass.
    """
    subscriber = digest.subscriber
    reasons = reasons or [pick.reason for pick in picks]
    html_blocks, text_blocks = [], []
    feedback_url = digest_links.feedback_urls(subscriber)
    for position, (pick, reason) in enumerate(zip(picks, reasons, strict=True), 1):
        paper = pick.paper
        html, text = _paper_parts(Shown.of(paper), web)
        up, down = feedback_url(paper, 1), feedback_url(paper, -1)
        values = {"up": up, "down": down, "reason": reason, "position": str(position)}
        text_blocks.append(_fill(text, values))
        html_blocks.append(_fill(html, {name: escape(value) for name, value in values.items()}))
    subject, text, html = _frame_parts(
        timezone.localtime(digest.scheduled_for, subscriber.zoneinfo).date(),
        subscriber.frequency == "weekly",
        len(picks),
        picks[0].paper.title if picks else "",
        settings.SITE_URL,
        web,
    )
    links_ = {
        "view": digest_links.view_url(digest),
        "manage": links.manage_url(subscriber),
        "unsubscribe": links.unsubscribe_url(subscriber),
    }
    text = _fill(text, links_ | {"papers": "".join(text_blocks)})
    html_links = {name: escape(value) for name, value in links_.items()}
    html = _fill(html, html_links | {"papers": "".join(html_blocks)})
    return subject, text, html


def render_sent_digest(digest, *, web: bool = False) -> tuple[str, str, str] | None:
    """A digest as it was mailed: the papers and reasons it was sent with, from the
    ledger, not recomposed today. None when it carried no papers (skipped, failed)."""
    items = list(digest.items.select_related("paper"))
    if not items:
        return None
    picks = [Pick(paper=item.paper, relevance=item.score) for item in items]
    return render_digest(digest, picks, reasons=[item.reason for item in items], web=web)


def digest_headers(subscriber) -> dict[str, str]:
    domain = site_domain()
    return links.list_unsubscribe_headers(subscriber) | {
        "List-Id": f"Paperboy digest <digest.{domain}>",
        "Auto-Submitted": "auto-generated",
        "Message-ID": mail.make_msgid("digest", domain=domain),
    }


def message(digest, rendered: tuple[str, str, str], *, raw: bool) -> Outgoing:
    """The rendered digest as a message for the mailer: bytes for SMTP, else Django's
    message object (mailing.message.outgoing)."""
    subject, text, html = rendered
    return outgoing(
        settings.DIGEST_FROM_EMAIL,
        digest.subscriber.email,
        subject,
        text,
        html,
        digest_headers(digest.subscriber),
        raw=raw,
    )


def build_digest(digest, picks=None, *, rendered=None) -> mail.EmailMultiAlternatives:
    """The digest as Django's message object, for any mailer (ESPs among them)."""
    return message(digest, rendered or render_digest(digest, picks), raw=False).email


def digest_bytes(digest, rendered: tuple[str, str, str]) -> tuple[str, bytes]:
    """(Message-ID, the raw message) of the same digest, as an SMTP server receives it."""
    built = message(digest, rendered, raw=True)
    return built.message_id, built.raw
