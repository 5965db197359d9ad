"""A discard SMTP server for benchmarks: accepts everything, as fast as Python can.

aiosmtpd's Sink handler tops out around 440 messages/s on these machines, which would
make the sink, not Paperboy, the thing measured. This speaks just enough SMTP for
smtplib (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no pipelining, no auth) on a
bare asyncio Protocol, and appends each message to a spool file for the checks that
run after the clock stops: ``<rcpt>\\n<length>\\n<bytes>``.

Run: python -m bench.sink --port 2525 --spool /tmp/spool [--ready FILE]
"""

import argparse
import asyncio
import os
import signal
import sys

END = b"\r\n.\r\n"


class Session(asyncio.Protocol):
    def __init__(self, spool):
        self.spool = spool
        self.buffer = bytearray()
        self.in_data = False
        self.rcpts: list[bytes] = []

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data):
        self.buffer += data
        while self.buffer:
            if self.in_data:
                end = self.buffer.find(END)
                if end < 0:
                    return
                self.spool.write_message(self.rcpts, bytes(self.buffer[:end]))
                del self.buffer[: end + len(END)]
                self.in_data, self.rcpts = False, []
                self.transport.write(b"250 2.0.0 queued\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            self.command(line)

    def command(self, line: bytes):
        verb = line[:4].upper()
        if verb == b"EHLO":
            self.transport.write(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n")
        elif verb == b"RCPT":
            self.rcpts.append(line.partition(b":")[2].strip().strip(b"<>").split(b">")[0])
            self.transport.write(b"250 2.1.5 ok\r\n")
        elif verb == b"DATA":
            self.in_data = True
            self.transport.write(b"354 go ahead\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        elif verb in (b"HELO", b"MAIL", b"RSET", b"NOOP"):
            if verb == b"RSET":
                self.rcpts = []
            self.transport.write(b"250 ok\r\n")
        else:
            self.transport.write(b"502 5.5.1 not implemented\r\n")


class Spool:
    def __init__(self, path):
        self.file = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed on exit
        self.count = 0

    def write_message(self, rcpts: list[bytes], data: bytes):
        self.file.write(b" ".join(rcpts) + b"\n%d\n" % len(data) + data)
        self.count += 1

    def close(self):
        self.file.close()


def spool_index(path):
    """Yield (offset, size, recipients) of each message in a spool file, without
    reading the messages."""
    with open(path, "rb") as file:
        while line := file.readline():
            rcpts = [r.decode() for r in line.rstrip(b"\n").split(b" ")]
            size = int(file.readline())
            offset = file.tell()
            file.seek(size, 1)
            yield offset, size, rcpts


async def serve(host: str, port: int, spool_path: str, ready: str | None):
    spool = Spool(spool_path)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Session(spool), host, port, backlog=128)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    if ready:
        with open(ready, "w") as file:
            file.write(str(server.sockets[0].getsockname()[1]))
    await stop
    server.close()
    spool.close()
    print(f"sink: {spool.count} messages", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--spool", default=os.devnull)
    parser.add_argument("--ready", help="write the bound port to this file once listening")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.spool, args.ready))


if __name__ == "__main__":
    main()
