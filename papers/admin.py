"""Papers, topics and imports: what curators feature, hide, pin, preview, promote,
merge and import.

Built for 100,000 subscribers, thousands of papers and 5,000+ interest topics: every
changelist runs the same number of queries whatever the page size, counts are
correlated subqueries for the page's rows, and nothing lists every topic.
"""

import datetime as dt
import logging
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.admin import confirm_action
from papers import feeds, importers, tasks
from papers.matching import PAPER_FIELDS, RESCORE_WINDOW, score, score_papers
from papers.models import ImportRun, Paper, PaperTopic, Topic
from papers.topics import merge_topics, preview_terms, promote_to_curated

TOPICS_SHOWN = 5  # per paper in the changelist; the rest are "and N more"
FILTER_TOPICS = 200  # a safety cap: curated topics are a hand-made, short list
MERGE_LIMIT = 50  # topics in one merge; the survivor is picked from a select of them
STORED_MATCHES_SHOWN = 50
PREVIEW_ROWS_SHOWN = 200
PREVIEW = "_preview"

logger = logging.getLogger(__name__)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def changelist_url(model, **params) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def past_week() -> tuple[dt.datetime, dt.datetime]:
    """The bounds of the date filter's "Past 7 days", so a topic's count of recent
    matches and the paper list it links to agree."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=7), today + dt.timedelta(days=1)


# Papers


class TopicFilter(admin.SimpleListFilter):
    """Papers a topic matches, by the stored scores.

    Lists curated topics only (there are thousands of interests), but filters by any
    topic id in the URL, which is how a topic's row links here.
    """

    title = "topic"
    parameter_name = "topic"

    def lookups(self, request, model_admin):
        topics = list(
            Topic.objects.curated().order_by("name").values_list("pk", "name")[:FILTER_TOPICS]
        )
        value = self.value()
        if value and value.isdigit() and all(str(pk) != value for pk, _ in topics):
            # Listed so that the sidebar shows which topic the list is filtered by.
            topics += Topic.objects.filter(pk=value).values_list("pk", "name")
        return [(str(pk), name) for pk, name in topics]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        try:
            topic_id = int(self.value())
        except ValueError as error:
            raise IncorrectLookupParameters(error) from error
        # EXISTS rather than a join: one row per paper, and update() still works.
        return queryset.filter(
            Exists(PaperTopic.objects.matching().filter(topic_id=topic_id, paper=OuterRef("pk")))
        )


class PaperChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # Prefetched for the page's rows only, not in get_queryset(), so actions on
        # the whole selection and the change form do not pay for it.
        self.result_list = self.result_list.prefetch_related(
            Prefetch(
                "topic_scores",
                queryset=PaperTopic.objects.matching()
                .select_related("topic")
                .order_by("-score", "topic__name"),
                to_attr="matches",
            )
        )


class TopicScoreInline(admin.TabularInline):
    """The paper's stored scores; a curator pins or excludes one."""

    model = PaperTopic
    verbose_name = "topic score"
    verbose_name_plural = "topic scores"
    fields = ["topic", "score", "terms", "curation"]
    # The topic is shown, not a widget: a widget would look each one up on its own.
    readonly_fields = ["topic", "score", "terms"]
    ordering = ["-score", "pk"]
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        # Each row is labelled with str(row), which names the paper and the topic.
        return (
            super()
            .get_queryset(request)
            .select_related("paper", "topic")
            .defer("paper__abstract", "paper__authors")
        )

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="matched terms")
    def terms(self, row):
        return ", ".join(row.matched_terms) or "—"


class PinForm(forms.ModelForm):
    class Meta:
        model = PaperTopic
        fields = ["topic", "curation"]

    def clean_curation(self):
        value = self.cleaned_data["curation"]
        if not value:
            raise forms.ValidationError("Choose pinned or excluded.")
        return value

    def save(self, commit=True):
        row = super().save(commit=False)
        # Scored now so the row shows its real score, not 0, until the next rescore.
        row.score, row.matched_terms = score(row.paper, row.topic)
        if commit:
            row.save()
        return row


class PinInline(admin.TabularInline):
    """Pins or excludes a topic the paper has no stored score for."""

    model = PaperTopic
    form = PinForm
    verbose_name = "pin or exclusion"
    verbose_name_plural = "pin or exclude another topic"
    fields = ["topic", "curation"]
    autocomplete_fields = ["topic"]
    extra = 1
    can_delete = False

    def get_queryset(self, request):
        # Stored rows are edited in the topic scores above; this only adds.
        return super().get_queryset(request).none()


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "arxiv_link",
        "published_on",
        "upvotes",
        "topics",
        "featured",
        "hidden",
        "ingested_at",
    ]
    list_filter = [
        TopicFilter,
        "featured",
        "hidden",
        "source",
        "published_on",
        "ingested_at",
    ]
    search_fields = ["title", "abstract", "authors", "arxiv_id", "ai_keywords"]
    date_hierarchy = "ingested_at"
    readonly_fields = ["arxiv_page", "title_key", "ingested_at", "updated_at"]
    list_per_page = 50
    inlines = [TopicScoreInline, PinInline]
    actions = ["feature", "unfeature", "hide", "unhide", "rescore"]

    def get_changelist(self, request, **kwargs):
        return PaperChangeList

    @admin.display(description="arXiv", ordering="arxiv_id")
    def arxiv_link(self, paper):
        if not paper.arxiv_id:
            return "—"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', paper.url, paper.arxiv_id
        )

    @admin.display(description="arXiv page")
    def arxiv_page(self, paper):
        if paper.pk is None:
            return "—"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', paper.url, paper.url
        )

    @admin.display(description="topics")
    def topics(self, paper):
        matches = getattr(paper, "matches", [])
        if not matches:
            return "—"
        links = format_html_join(
            ", ",
            '<a href="{}" title="{}">{}</a>',
            (
                (
                    changelist_url(Paper, topic=row.topic_id),
                    row.get_curation_display() if row.curation else f"score {row.score:.2f}",
                    row.topic.name,
                )
                for row in matches[:TOPICS_SHOWN]
            ),
        )
        if len(matches) > TOPICS_SHOWN:
            return format_html("{} and {} more", links, len(matches) - TOPICS_SHOWN)
        return links

    def _update(self, request, queryset, *, action, title, explanation, done, **values):
        def apply(selected):
            # Rows already in that state are left alone, so the count is what changed.
            changed = selected.exclude(**values).update(**values, updated_at=timezone.now())
            return f"{done} {_plural(changed, 'paper')}."

        return confirm_action(
            self,
            request,
            queryset,
            action=action,
            title=title,
            explanation=explanation,
            apply=apply,
        )

    @admin.action(description="Feature the selected papers…", permissions=["change"])
    def feature(self, request, queryset):
        return self._update(
            request,
            queryset,
            action="feature",
            title="Feature these papers?",
            explanation="Featured papers rank higher in digests and on the trending page.",
            done="Featured",
            featured=True,
        )

    @admin.action(description="Stop featuring the selected papers…", permissions=["change"])
    def unfeature(self, request, queryset):
        return self._update(
            request,
            queryset,
            action="unfeature",
            title="Stop featuring these papers?",
            explanation="They rank by their score and upvotes alone again.",
            done="Unfeatured",
            featured=False,
        )

    @admin.action(description="Hide the selected papers…", permissions=["change"])
    def hide(self, request, queryset):
        return self._update(
            request,
            queryset,
            action="hide",
            title="Hide these papers?",
            explanation="Hidden papers are left out of the trending page and every digest.",
            done="Hid",
            hidden=True,
        )

    @admin.action(description="Unhide the selected papers…", permissions=["change"])
    def unhide(self, request, queryset):
        return self._update(
            request,
            queryset,
            action="unhide",
            title="Show these papers again?",
            explanation="They can appear on the trending page and in digests again.",
            done="Unhid",
            hidden=False,
        )

    @admin.action(
        description="Rescore the selected papers against every topic…", permissions=["change"]
    )
    def rescore(self, request, queryset):
        def apply(selected):
            papers = list(selected.only(*PAPER_FIELDS))
            written = score_papers(papers)
            return f"Rescored {_plural(len(papers), 'paper')}: {_plural(written, 'score')} stored."

        return confirm_action(
            self,
            request,
            queryset,
            action="rescore",
            title="Rescore these papers?",
            explanation="Scores them against every topic's current terms. "
            "Pins and exclusions stay as the curators set them.",
            apply=apply,
        )


# Topics


def count_of(queryset) -> Coalesce:
    """COUNT(*) of ``queryset`` (filtered by the outer topic) as a correlated subquery:
    evaluated for the page's rows, where a GROUP BY over the whole join would count
    every subscriber of every topic to show fifty."""
    counted = queryset.order_by().values("topic_id").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _merge_form(choices):
    topics = list(choices)
    # Suggest the topic most worth keeping: curated, then the most followed.
    suggested = max(topics, key=lambda t: (t.kind == Topic.Kind.CURATED, t.subscriber_count, -t.pk))

    class SurvivorField(forms.ModelChoiceField):
        def label_from_instance(self, topic):
            return (
                f"{topic.name} ({topic.get_kind_display().lower()}, "
                f"{_plural(topic.subscriber_count, 'subscriber')})"
            )

    class MergeForm(forms.Form):
        survivor = SurvivorField(
            queryset=choices,
            initial=suggested.pk,
            empty_label=None,
            label="Keep",
            help_text="The topic that stays; the others are merged into it and deleted.",
        )

    return MergeForm


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "recent_match_count", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description", "terms"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["key", "created_at"]
    list_per_page = 50
    actions = ["promote", "merge"]

    def get_queryset(self, request):
        since, _ = past_week()
        return (
            super()
            .get_queryset(request)
            .annotate(
                subscriber_count=self.followers(),
                recent_match_count=count_of(
                    PaperTopic.objects.matching().filter(
                        topic_id=OuterRef("pk"), paper__ingested_at__gte=since
                    )
                ),
            )
        )

    def followers(self):
        """How many readers follow each topic (the merge suggests the most followed), as
        an expression over OuterRef("pk"). Papers does not know its readers: the
        subscriptions admin, registered over this one, counts them."""
        return Value(0, output_field=IntegerField())

    @admin.display(description="papers matched, past 7 days", ordering="recent_match_count")
    def recent_match_count(self, topic):
        since, until = past_week()
        url = changelist_url(
            Paper, topic=topic.pk, ingested_at__gte=str(since), ingested_at__lt=str(until)
        )
        return format_html('<a href="{}">{}</a>', url, topic.recent_match_count)

    @admin.action(
        description="Promote the selected interests to curated topics…", permissions=["change"]
    )
    def promote(self, request, queryset):
        interests = queryset.interests()
        if not interests.exists():
            self.message_user(
                request, "None of the selected topics is a subscriber interest.", messages.WARNING
            )
            return None
        return confirm_action(
            self,
            request,
            interests,
            action="promote",
            title="Promote these interests to curated topics?",
            explanation="Curated topics are offered on the signup form and listed in the paper "
            "filter.",
            apply=lambda selected: f"Promoted {_plural(promote_to_curated(selected), 'topic')}.",
        )

    # A merge deletes the topics merged into the first.
    @admin.action(description="Merge the selected topics…", permissions=["change", "delete"])
    def merge(self, request, queryset):
        selected = list(queryset.order_by("pk").values_list("pk", flat=True)[: MERGE_LIMIT + 1])
        if not 2 <= len(selected) <= MERGE_LIMIT:
            self.message_user(
                request, f"Select between 2 and {MERGE_LIMIT} topics to merge.", messages.WARNING
            )
            return None
        choices = self.get_queryset(request).filter(pk__in=selected).order_by("name")

        def apply(_, data):
            survivor = data["survivor"]
            others = [topic for topic in choices if topic.pk != survivor.pk]
            return str(merge_topics(survivor, others))

        return confirm_action(
            self,
            request,
            queryset,
            action="merge",
            title="Merge these topics?",
            explanation="Subscribers of the others follow the topic you keep, its terms gain "
            "theirs and it is rescored; their pins and exclusions carry over where it has "
            "none. The others are deleted: this cannot be undone.",
            apply=apply,
            form_class=_merge_form(choices),
            button="Merge",
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if request.method == "POST" and PREVIEW in request.POST:
            return type(form)(form.__name__, (_PreviewOnly, form), {})
        return form

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        context["rescore_days"] = RESCORE_WINDOW.days
        context["threshold"] = settings.PAPERBOY_MATCH_THRESHOLD
        if getattr(form, "previewed", False):
            rows = preview_terms(
                form.cleaned_data["terms"],
                topic=obj,
                name=form.cleaned_data.get("name", ""),
                kind=form.cleaned_data.get("kind", ""),
            )
            context["preview_rows"] = rows
            context["preview_shown"] = rows[:PREVIEW_ROWS_SHOWN]
            context["preview_matching"] = sum(row.reaches_threshold for row in rows)
        if obj is not None and obj.pk is not None:
            stored = PaperTopic.objects.matching().filter(topic_id=obj.pk)
            context["stored_count"] = stored.count()
            context["stored_matches"] = list(
                stored.select_related("paper")
                .defer("paper__abstract", "paper__authors")
                .order_by("-score", "-paper__ingested_at")[:STORED_MATCHES_SHOWN]
            )
            context["stored_url"] = changelist_url(Paper, topic=obj.pk)
        return super().render_change_form(request, context, add, change, form_url, obj)


class _PreviewOnly:
    """Mixed into the topic form when "Preview matches" is pressed: it validates as
    usual but reports itself invalid, so the change view renders the form again,
    with the matches, instead of saving it."""

    previewed = False

    def is_valid(self):
        self.previewed = super().is_valid()
        return False


class ImportForm(forms.Form):
    upload = forms.FileField(
        required=False,
        label="File",
        help_text="A saved trending-papers page, HF JSON or arXiv Atom.",
    )
    url = forms.CharField(
        required=False,
        label="or URL",
        max_length=1000,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Fetched now, from this server.",
    )
    format = forms.ChoiceField(
        choices=[("auto", "Detect"), *((name, name) for name in importers.FORMATS)]
    )

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("upload")) == bool(cleaned.get("url")):
            raise ValidationError("Choose a file or give a URL (one of them).")
        return cleaned


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = [
        "finished_at",
        "source",
        "format",
        "status",
        "created",
        "updated",
        "unchanged",
        "rejected",
    ]
    list_filter = ["status", "format", ("finished_at", admin.DateFieldListFilter)]
    search_fields = ["source", "error"]
    change_list_template = "admin/papers/importrun/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="papers_importrun_import",
            ),
            path(
                "import-feeds/",
                self.admin_site.admin_view(self.import_feeds_view),
                name="papers_importrun_import_feeds",
            ),
            *super().get_urls(),
        ]

    def _may_import(self, request) -> bool:
        return request.user.has_perm("papers.add_paper")

    def import_view(self, request):
        """Import a file or URL now, in this request: all or nothing, like the command."""
        if not self._may_import(request):
            return HttpResponse("You may not import papers.", status=403)
        form = ImportForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload, url = form.cleaned_data["upload"], form.cleaned_data["url"]
            limit = settings.PAPERBOY_MAX_IMPORT_BYTES
            try:
                if upload:
                    # One byte over the limit is enough to refuse it.
                    data = upload.read(limit + 1)
                    summary = importers.import_source(
                        f"upload: {upload.name}"[:1000],
                        form.cleaned_data["format"],
                        data=data,
                        embed_later=True,
                    )
                else:
                    summary = importers.import_source(
                        url, form.cleaned_data["format"], embed_later=True
                    )
            except importers.ImportFailed as exc:
                errors = exc.errors[:50]
                form.add_error(None, f"{exc}. Nothing was imported.")
            except Exception:
                # A bug or the database, not the source: one transaction, so nothing
                # was stored; the curator gets a page, the operator the traceback.
                logger.exception("Importing %s failed", url or "an upload")
                form.add_error(
                    None,
                    "The import failed on the server's side. Nothing was imported; "
                    "the error is in the server's log.",
                )
            else:
                self.message_user(request, f"Imported: {summary}.", messages.SUCCESS)
                return redirect("admin:papers_importrun_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import papers",
            "opts": self.model._meta,
            "form": form,
            "errors": errors,
            "feeds": feeds.statuses(),
        }
        return TemplateResponse(request, "admin/papers/importrun/import.html", context)

    def import_feeds_view(self, request):
        if request.method != "POST" or not self._may_import(request):
            return redirect("admin:papers_importrun_changelist")
        if not (urls := feeds.urls()):
            self.message_user(
                request,
                "No feeds are configured (PAPERBOY_FEED_URLS, PAPERBOY_ARXIV_CATEGORIES).",
                messages.WARNING,
            )
        else:
            transaction.on_commit(tasks.import_feeds.delay)
            self.message_user(
                request,
                f"Importing {len(urls)} feed(s) in the background; "
                "each appears here when it is done.",
                messages.SUCCESS,
            )
        return redirect("admin:papers_importrun_changelist")
