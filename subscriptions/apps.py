from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscribers"

    def ready(self):
        from anymail.signals import inbound, tracking

        from papers.signals import topics_merging
        from subscriptions import inbound_mail, receivers

        tracking.connect(receivers.record, dispatch_uid="subscriptions.delivery_events")
        inbound.connect(inbound_mail.unsubscribe_by_mail, dispatch_uid="subscriptions.inbound")
        topics_merging.connect(
            receivers.follow_survivor, dispatch_uid="subscriptions.topics_merging"
        )
