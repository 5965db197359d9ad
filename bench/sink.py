"""A discard SMTP server for benchmarks: accepts everything, as fast as Python can.

aiosmtpd's Sink handler tops out around 440 messages/s on these machines, which would
make the sink, not Paperboy, the thing measured. This speaks just enough SMTP for
smtplib (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; PIPELINING, no auth) on a
bare asyncio Protocol, and appends each message to a spool file for the checks that
run after the clock stops: ``<rcpt>\\n<length>\\n<bytes>``.

``--latency MS`` holds every reply that long, in order, as a mail server that many
milliseconds away would seem to (its round trip, not its bandwidth).

Run: python -m bench.sink --port 2525 --spool /tmp/spool [--ready FILE] [--latency MS]
"""

import argparse
import asyncio
import os
import signal
import sys
import time

END = b"\r\n.\r\n"


class Session(asyncio.Protocol):
    def __init__(self, spool, latency: float = 0):
        self.spool = spool
        self.latency = latency
        self.buffer = bytearray()
        self.in_data = False
        self.rcpts: list[bytes] = []
        self.held: list[tuple[float, bytes]] = []  # replies not yet due, in order
        self.closing = False  # QUIT came: close once its reply is out

    def connection_made(self, transport):
        self.transport = transport
        self.reply(b"220 sink ESMTP\r\n")

    def reply(self, data: bytes) -> None:
        if not self.latency:
            self.transport.write(data)
            return
        loop = asyncio.get_running_loop()
        self.held.append((loop.time() + self.latency, data))
        if len(self.held) == 1:
            loop.call_at(self.held[0][0], self.release)

    def release(self) -> None:
        loop = asyncio.get_running_loop()
        while self.held and self.held[0][0] <= loop.time():
            data = self.held.pop(0)[1]
            if not self.transport.is_closing():
                self.transport.write(data)
        if self.held:
            loop.call_at(self.held[0][0], self.release)
        elif self.closing:
            self.transport.close()

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
                self.reply(b"250 2.0.0 queued\r\n")
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
            self.reply(b"250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SIZE 104857600\r\n")
        elif verb == b"RCPT":
            self.rcpts.append(line.partition(b":")[2].strip().strip(b"<>").split(b">")[0])
            self.reply(b"250 2.1.5 ok\r\n")
        elif verb == b"DATA":
            self.in_data = True
            self.reply(b"354 go ahead\r\n")
        elif verb == b"QUIT":
            self.reply(b"221 bye\r\n")
            if self.held:
                self.closing = True
            else:
                self.transport.close()
        elif verb in (b"HELO", b"MAIL", b"RSET", b"NOOP"):
            if verb == b"RSET":
                self.rcpts = []
            self.reply(b"250 ok\r\n")
        else:
            self.reply(b"502 5.5.1 not implemented\r\n")


class Spool:
    """The messages received, and (``times``) when each came, one clock time a line."""

    def __init__(self, path, times=None):
        self.file = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed on exit
        self.times = open(times, "w", buffering=1 << 16) if times else None  # noqa: SIM115
        self.count = 0

    def write_message(self, rcpts: list[bytes], data: bytes):
        self.file.write(b" ".join(rcpts) + b"\n%d\n" % len(data) + data)
        if self.times is not None:
            self.times.write(f"{time.time():.6f}\n")
        self.count += 1

    def close(self):
        self.file.close()
        if self.times is not None:
            self.times.close()


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


async def serve(args, session: type[asyncio.Protocol]):
    spool, latency = Spool(args.spool, args.times), args.latency / 1000
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: session(spool, latency), args.host, args.port, backlog=128
    )
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    if args.ready:
        with open(args.ready, "w") as file:
            file.write(str(server.sockets[0].getsockname()[1]))
    await stop
    server.close()
    spool.close()
    print(
        f"{session.__name__} of {session.__module__.rpartition('.')[2]}: {spool.count} messages",
        file=sys.stderr,
    )


def main(argv=None, session: type[asyncio.Protocol] = Session, doc: str = __doc__):
    """Serve ``session`` (this sink's, or bench.esp's) until SIGTERM."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--spool", default=os.devnull)
    parser.add_argument("--ready", help="write the bound port to this file once listening")
    parser.add_argument("--latency", type=float, default=0, help="milliseconds before each reply")
    parser.add_argument("--times", help="write when each message came to this file")
    asyncio.run(serve(parser.parse_args(argv), session))


if __name__ == "__main__":
    main()
