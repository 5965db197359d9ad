"""The SMTP transaction split at its point of no return (mailing.smtp), against a server
that offers PIPELINING and one that does not."""

import smtplib
import socket
import threading

import pytest

from mailing import smtp

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello\r\n"


class StrictPipeliningServer:
    """Answers MAIL, RCPT and DATA only once all three are in: a client that waits for
    each reply before the next command would wait forever (its timeout, here)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        with self.listener:
            conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as file:
            conn.sendall(b"220 strict ESMTP\r\n")
            file.readline()  # EHLO
            conn.sendall(b"250-strict\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n")
            envelope = [file.readline() for _ in range(3)]
            assert [line.split(b":")[0].split()[0].upper() for line in envelope] == [
                b"MAIL",
                b"RCPT",
                b"DATA",
            ]
            conn.sendall(b"250 ok\r\n250 ok\r\n354 go on\r\n")
            while (line := file.readline()) != b".\r\n":
                self.received += line
            conn.sendall(b"250 queued\r\n")
            file.readline()  # QUIT
            conn.sendall(b"221 bye\r\n")


def test_the_envelope_goes_in_one_round_trip_where_the_server_offers_pipelining():
    server = StrictPipeliningServer()
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=5)

    smtp.send_all_but_the_dot(client, "a@example.org", "b@example.org", MESSAGE)
    smtp.end_data(client)
    client.quit()
    server.thread.join(5)

    assert server.received == MESSAGE


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_recipient_sends_nothing_and_the_connection_carries_the_next(
    smtp_server, pipelining
):
    smtp_server.offer_pipelining(pipelining)
    smtp_server.refuse_recipient("gone@example.org", "550 5.1.1 No such user")
    client = smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5)

    with pytest.raises(smtplib.SMTPRecipientsRefused):
        smtp.send_all_but_the_dot(client, "a@example.org", "gone@example.org", MESSAGE)
    smtp.send_all_but_the_dot(client, "a@example.org", "b@example.org", MESSAGE)
    smtp.end_data(client)
    client.quit()

    assert [message.rcpt_tos for message in smtp_server.messages] == [("b@example.org",)]
