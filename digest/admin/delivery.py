from django.contrib import admin

from digest.models import Digest, DigestItem, ImportRun


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
