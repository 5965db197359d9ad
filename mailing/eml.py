"""An email backend that writes each message to its own .eml file.

Django's file backend appends every message of a connection to one .log file;
an outbox of .eml files opens directly in any mail client and is easy to test.
"""

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.core.mail import InvalidMailer
from django.core.mail.backends.base import BaseEmailBackend


class EmailBackend(BaseEmailBackend):
    def __init__(self, *, file_path=None, **kwargs):
        super().__init__(**kwargs)
        if not file_path:
            raise InvalidMailer("OPTIONS must define 'file_path'.", alias=self.alias)
        self.path = Path(file_path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidMailer(
                f"cannot create the outbox {self.path}: {exc}", alias=self.alias
            ) from exc

    def send_messages(self, email_messages):
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            name = f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
            # Write then rename, so a reader never sees half a message.
            partial = self.path / f".{name}.part"
            partial.write_bytes(message.message().as_bytes())
            os.replace(partial, self.path / name)
            sent += 1
        return sent
