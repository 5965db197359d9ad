from django.apps import AppConfig


class DigestConfig(AppConfig):
    name = "digest"
    verbose_name = "Digests"

    def ready(self):
        from digest import receivers
        from papers.signals import topics_merging
        from subscriptions.signals import (
            export_collecting,
            message_ids_collecting,
            message_reported,
        )

        message_reported.connect(receivers.track, dispatch_uid="digest.track")
        export_collecting.connect(receivers.export_sections, dispatch_uid="digest.export")
        message_ids_collecting.connect(receivers.message_ids, dispatch_uid="digest.message_ids")
        topics_merging.connect(receivers.topics_merging, dispatch_uid="digest.topics_merging")
