"""A stand-in for an ESP's HTTP API in benchmarks: Postmark's ``POST /email``, which
anymail calls with ``POSTMARK_API_URL`` pointed here.

Like bench.sink, a bare asyncio Protocol (HTTP/1.1 with keep-alive, as anymail's
requests session uses it) so that the stand-in is not what is measured. Each accepted
message is spooled as a small RFC 5322 message (To, the Message-ID it answered with, the
text body) in the sink's format, so the same checks run on it. ``--latency MS`` holds
each answer that long.

Run: python -m bench.esp --spool /tmp/spool [--ready FILE] [--latency MS]
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import uuid

from bench.sink import Spool


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


async def serve(
    host: str, port: int, spool_path: str, ready: str | None, latency: float, times=None
):
    spool = Spool(spool_path, times)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Session(spool, latency), host, port, backlog=128)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    if ready:
        with open(ready, "w") as file:
            file.write(str(server.sockets[0].getsockname()[1]))
    await stop
    server.close()
    spool.close()
    print(f"esp: {spool.count} messages", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--spool", default=os.devnull)
    parser.add_argument("--ready", help="write the bound port to this file once listening")
    parser.add_argument("--latency", type=float, default=0, help="milliseconds before each answer")
    parser.add_argument("--times", help="write when each message came to this file")
    args = parser.parse_args(argv)
    latency = args.latency / 1000
    asyncio.run(serve(args.host, args.port, args.spool, args.ready, latency, args.times))


if __name__ == "__main__":
    main()
