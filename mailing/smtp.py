"""One SMTP transaction split at its point of no return.

A mail server takes responsibility for a message when it reads the dot that ends
DATA; until then, a dropped connection means nothing was delivered. smtplib's
``sendmail`` sends the message and that dot in one write, so a caller cannot record
"this is going out" between the two. Here ``send_all_but_the_dot`` runs the envelope and writes the
message without the dot, and ``end_data`` writes the dot and reads the verdict. The
sender records the message as going out in between (digest.sending): a crash before
that point leaves the digest to be sent again, a crash after it leaves a digest that
is never sent twice.
"""

import re
import smtplib
import socket
from collections.abc import Callable

# RFC 5321 4.5.2: a line of the message that starts with a dot gets another one.
_LEADING_DOT = re.compile(rb"(?m)^\.")


class OutcomeUnknown(Exception):
    """The server had the whole message but its answer never came (a timeout, a
    dropped connection): it may have been delivered."""


def _refused(connection: smtplib.SMTP, code: int) -> None:
    # A 421 means the server is closing the connection; otherwise the transaction
    # is reset so that the connection can carry the next message.
    if code == 421:
        connection.close()
    else:
        connection._rset()


def send_all_but_the_dot(
    connection: smtplib.SMTP, sender: str, recipient: str, data: bytes
) -> None:
    """Send the envelope and the message, all but the final dot. Raises smtplib's
    errors as ``sendmail`` does; nothing has been delivered when one is raised."""
    connection.ehlo_or_helo_if_needed()
    # The dot goes in a write of its own, after the body. With Nagle's algorithm on,
    # the kernel holds that small write until the body's last segment is acknowledged,
    # and the server delays that acknowledgement (40 ms on Linux): every digest would
    # wait for it. Measured: 40 digests/s with it, 200 without.
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    options = []
    if connection.does_esmtp and connection.has_extn("size"):
        options.append(f"SIZE={len(data)}")
    pipelining = connection.does_esmtp and connection.has_extn("pipelining")
    envelope = _envelope_pipelined if pipelining else _envelope_in_turn
    mail, rcpt, data_reply = envelope(connection, sender, recipient, options)
    if mail[0] != 250:
        _refused(connection, mail[0])
        raise smtplib.SMTPSenderRefused(*mail, sender)
    if rcpt[0] not in (250, 251):
        _refused(connection, rcpt[0])
        raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
    if data_reply[0] != 354:
        _refused(connection, data_reply[0])
        raise smtplib.SMTPDataError(*data_reply)
    body = _LEADING_DOT.sub(b"..", data)
    connection.send(body if body.endswith(b"\r\n") else body + b"\r\n")


def _envelope_in_turn(connection: smtplib.SMTP, sender: str, recipient: str, options: list[str]):
    """MAIL, RCPT and DATA, each after the previous one's reply; None for those not sent."""
    mail = connection.mail(sender, options)
    if mail[0] != 250:
        return mail, None, None
    rcpt = connection.rcpt(recipient)
    if rcpt[0] not in (250, 251):
        return mail, rcpt, None
    connection.putcmd("data")
    return mail, rcpt, connection.getreply()


def _envelope_pipelined(
    connection: smtplib.SMTP, sender: str, recipient: str, options: list[str]
) -> list[tuple[int, bytes]]:
    """RFC 2920: MAIL, RCPT and DATA in one write and their replies read in order, one
    round trip instead of three. A server that took DATA though the envelope failed
    gets the empty message's dot, which it refuses: nothing is delivered."""
    optionlist = "".join(f" {option}" for option in options)
    connection.send(
        f"MAIL FROM:{smtplib.quoteaddr(sender)}{optionlist}\r\n"
        f"RCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n".encode("ascii")
    )
    replies = []
    for _ in range(3):
        replies.append(connection.getreply())
        if replies[-1][0] == 421:
            break  # the server is closing the connection: nothing more comes
    replies += [(421, b"not sent: the connection is closing")] * (3 - len(replies))
    mail, rcpt, data_reply = replies
    if data_reply[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
        connection.send(b".\r\n")
        connection.getreply()
    return replies


def end_data(connection: smtplib.SMTP, sent: Callable[[], None] | None = None) -> None:
    """End DATA and read the server's verdict. ``SMTPDataError`` when it refused the
    message (so it was not delivered); ``OutcomeUnknown`` when no verdict came.
    ``sent`` is called once the dot is written, before the verdict is waited for."""
    try:
        connection.send(b".\r\n")
        if sent is not None:
            sent()
        code, reply = connection.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise OutcomeUnknown(f"no reply after the end of DATA: {exc}") from exc
    if code != 250:
        _refused(connection, code)
        raise smtplib.SMTPDataError(code, reply)
