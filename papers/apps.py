from django.apps import AppConfig


class PapersConfig(AppConfig):
    name = "papers"
    verbose_name = "Papers and topics"

    def ready(self):
        from papers import signals

        signals.connect()
