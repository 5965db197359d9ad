"""django-celery-beat's schedules in the admin, with what Paperboy's own tasks are for."""

from django.contrib import admin
from django_celery_beat.admin import PeriodicTaskAdmin as BasePeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

PAPERBOY_TASKS = {
    "papers.import_feeds": "Fetches the feeds (Hugging Face's daily papers unless "
    "PAPERBOY_FEED_URLS says otherwise); results under Import runs.",
    "digest.schedule_digests": "Claims every due digest once and queues the sending; "
    "results under Scheduling passes. A shorter interval sends closer to each reader's hour.",
    "subscriptions.process_pending_delivery_events": "Acts on ESP webhook events that the "
    "web request could not hand to a worker.",
}


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(BasePeriodicTaskAdmin):
    """django-celery-beat's schedules, with what Paperboy's own tasks are for."""

    list_display = ["name", "purpose", "enabled", "interval", "crontab", "last_run_at"]
    list_select_related = ["interval", "crontab", "solar", "clocked"]
    change_list_template = "admin/django_celery_beat/periodictask/change_list.html"

    @admin.display(description="What it does")
    def purpose(self, task):
        return PAPERBOY_TASKS.get(task.task) or task.description[:120] or "—"

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        help_texts = {
            "enabled": "Untick to stop this task without losing its schedule.",
            "interval": "How often it runs. Beat picks up a change within a few seconds.",
            "description": "What the task is for, shown in the list.",
        }
        for name, text in help_texts.items():
            if name in form.base_fields:
                form.base_fields[name].help_text = text
        return form
