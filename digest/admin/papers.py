from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html

from digest.models import Paper, Topic


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
