from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html

from digest.models import Digest, DigestItem, ImportRun, Paper, Topic


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "arxiv_link",
        "published_on",
        "upvotes",
        "source",
        "featured",
        "hidden",
        "ingested_at",
    ]
    list_editable = ["featured", "hidden"]
    list_filter = ["featured", "hidden", "source", "published_on", "ingested_at"]
    search_fields = ["title", "abstract", "arxiv_id", "authors"]
    date_hierarchy = "ingested_at"
    readonly_fields = ["title_key", "ingested_at", "updated_at"]
    list_per_page = 50

    @admin.display(description="arXiv", ordering="arxiv_id")
    def arxiv_link(self, paper):
        if not paper.arxiv_id:
            return "—"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', paper.url, paper.arxiv_id
        )


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "subscriber_count", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description", "terms"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["key", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(subscriber_count=Count("subscribers"))

    @admin.display(description="Subscribers", ordering="subscriber_count")
    def subscriber_count(self, topic):
        return topic.subscriber_count


class DigestItemInline(admin.TabularInline):
    model = DigestItem
    fields = ["position", "paper", "score", "reason"]
    readonly_fields = fields
    raw_id_fields = ["paper"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = ["subscriber", "period", "status", "attempts", "scheduled_for", "sent_at"]
    list_filter = ["status", "scheduled_for"]
    list_select_related = ["subscriber"]
    search_fields = ["subscriber__email", "message_id"]
    raw_id_fields = ["subscriber"]
    date_hierarchy = "scheduled_for"
    inlines = [DigestItemInline]


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
    list_filter = ["status", "format"]
    search_fields = ["source", "error"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DigestItem)
class LedgerAdmin(admin.ModelAdmin):
    """Every paper sent to every subscriber: the ledger behind "never twice"."""

    list_display = ["subscriber", "paper", "digest", "position", "score", "reason"]
    list_select_related = ["subscriber", "paper", "digest"]
    search_fields = ["subscriber__email", "paper__title", "paper__arxiv_id"]
    raw_id_fields = ["digest", "subscriber", "paper"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
