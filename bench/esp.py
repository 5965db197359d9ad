"""A stand-in for an ESP's HTTP API in benchmarks: Postmark's ``POST /email``, which
anymail calls with ``POSTMARK_API_URL`` pointed here.

Like bench.sink, a bare asyncio Protocol (HTTP/1.1 with keep-alive, as anymail's
requests session uses it) so that the stand-in is not what is measured. Each accepted
message is spooled as a small RFC 5322 message (To, the Message-ID it answered with, the
text body) in the sink's format, so the same checks run on it. ``--latency MS`` holds
each answer that long.

Run: python -m bench.esp --spool /tmp/spool [--ready FILE] [--latency MS]
"""

import asyncio
import json
import uuid

from bench.sink import Spool, main


class Session(asyncio.Protocol):
    def __init__(self, spool: Spool, latency: float):
        self.spool, self.latency = spool, latency
        self.buffer = bytearray()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head[1:])
            }
            length = int(headers.get("content-length", 0))
            if len(self.buffer) < head_end + 4 + length:
                return
            body = bytes(self.buffer[head_end + 4 : head_end + 4 + length])
            del self.buffer[: head_end + 4 + length]
            self.answer(json.loads(body))

    def answer(self, request: dict) -> None:
        message_id = str(uuid.uuid4())
        to = request.get("To", "")
        message = (
            f"To: {to}\r\nMessage-ID: {message_id}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{request.get('TextBody', '')}"
        ).encode()
        self.spool.write_message([to.encode()], message)
        payload = json.dumps(
            {"To": to, "SubmittedAt": "", "MessageID": message_id, "ErrorCode": 0, "Message": "OK"}
        ).encode()
        response = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        if self.latency:
            asyncio.get_running_loop().call_later(self.latency, self.write, response)
        else:
            self.write(response)

    def write(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)


if __name__ == "__main__":
    main(session=Session, doc=__doc__)
