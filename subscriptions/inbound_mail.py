"""The mailto: form of List-Unsubscribe, arriving through anymail's inbound webhook.

The mail's subject is "unsubscribe <token>" (see subscriptions.links), so a reply
from any address, or a mail client's one-click mailto, unsubscribes exactly the
subscriber the digest went to.
"""

import logging
import re

from subscriptions import states
from subscriptions.tokens import BadToken, Purpose, read_token

log = logging.getLogger(__name__)
TOKEN = re.compile(r"unsubscribe\s+(\S+)", re.IGNORECASE)


def unsubscribe_by_mail(sender, event, esp_name, **kwargs) -> None:
    message = event.message
    subject = (message.get("Subject", "") if message is not None else "") or ""
    match = TOKEN.search(subject)
    if match is None:
        return
    try:
        subscriber = read_token(match.group(1), Purpose.UNSUBSCRIBE)
    except BadToken:
        log.info("inbound unsubscribe with an invalid token from %s", esp_name)
        return
    states.unsubscribe(subscriber)
