from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscribers"

    def ready(self):
        from anymail.signals import inbound, tracking

        from subscriptions import deliverability, inbound_mail

        tracking.connect(deliverability.record, dispatch_uid="subscriptions.delivery_events")
        inbound.connect(inbound_mail.unsubscribe_by_mail, dispatch_uid="subscriptions.inbound")
