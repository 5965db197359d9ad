"""Every email is built and handed to a mailer here, whoever writes its content:
templates into a message (``message``), a message into bytes (``mime``), the SMTP
transaction split at its point of no return (``smtp``), a mailer's connection for a
batch (``transport``), what is worth retrying (``retry``) and the local .eml outbox
(``eml``). It knows no app: subscriptions and digests bring their own content."""
