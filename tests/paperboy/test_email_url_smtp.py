"""EMAIL_URL=smtp://... delivers through a real SMTP server on loopback."""

import smtplib

import pytest
from django.core.mail import EmailMultiAlternatives, mailers

from paperboy.env import parse_email_url


@pytest.fixture
def smtp_url_mailer(settings, smtp_server):
    """The default mailer as EMAIL_URL=smtp://127.0.0.1:PORT configures it."""
    settings.MAILERS = {"default": parse_email_url(f"smtp://127.0.0.1:{smtp_server.port}")}
    return smtp_server


def digest_message(to: str = "reader@example.org") -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject="Your papers: Attention für alle",
        body="1. Sparse things, again\nhttps://arxiv.org/abs/2411.00001\n",
        from_email="Paperboy <hello@paperboy.test>",
        to=[to],
    )
    message.attach_alternative(
        '<p><a href="https://arxiv.org/abs/2411.00001">Sparse things, again</a></p>',
        "text/html",
    )
    return message


def test_a_message_arrives_with_its_headers_and_both_parts(smtp_url_mailer):
    sent = mailers.default.send_messages([digest_message()])

    assert sent == 1
    [received] = smtp_url_mailer.wait_for(1)
    assert received.mail_from == "hello@paperboy.test"
    assert received.rcpt_tos == ("reader@example.org",)
    parsed = received.parsed
    assert parsed["From"] == "Paperboy <hello@paperboy.test>"
    assert parsed["To"] == "reader@example.org"
    assert parsed["Subject"] == "Your papers: Attention für alle"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    # SMTP carries lines ending in CRLF, and the parsed part keeps them.
    assert text.get_content().splitlines() == [
        "1. Sparse things, again",
        "https://arxiv.org/abs/2411.00001",
    ]
    assert 'href="https://arxiv.org/abs/2411.00001"' in html.get_content()


def test_a_refused_recipient_raises(smtp_url_mailer):
    smtp_url_mailer.refuse_recipient("nobody@example.org", "550 5.1.1 No such user")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        mailers.default.send_messages([digest_message(to="nobody@example.org")])

    assert refused.value.recipients == {"nobody@example.org": (550, b"5.1.1 No such user")}
    assert smtp_url_mailer.messages == []


def test_a_temporary_failure_raises_and_the_next_send_goes_through(smtp_url_mailer):
    smtp_url_mailer.fail_next(1, "421 4.3.0 Try again later")

    with pytest.raises(smtplib.SMTPResponseException) as failure:
        mailers.default.send_messages([digest_message()])
    assert failure.value.smtp_code == 421
    assert smtp_url_mailer.messages == []

    assert mailers.default.send_messages([digest_message()]) == 1
    [received] = smtp_url_mailer.wait_for(1)
    assert received.rcpt_tos == ("reader@example.org",)
