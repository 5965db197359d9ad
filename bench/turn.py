"""How long a sending thread waits between its commit and its dot, with and without
the batch's turn (digest.sending.Batch.turn).

    .venv/bin/python -m bench.turn [--lanes 4] [--messages 300] [--rounds 3]

A model of a batch's connections, in one process as in a worker: each thread renders
(about 1 ms of Python), waits on the network as staging a message does, then "commits"
by a round trip to a server in another process, which stamps its answer with the
monotonic clock. The wait printed is from that stamp to the moment the thread runs
again, ready to write its dot: the instant in which a worker killed loses the digest.
Without the turn, a thread whose commit has returned waits for whichever thread is
rendering to give up the interpreter, up to its switch interval (5 ms); with it, no
thread renders while another is between its commit and its dot. The model leaves out
the database and SMTP themselves: what it measures is the interpreter's hand-over,
which the real code has in the same place.
"""

import argparse
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

SERVER = r"""
import socket, struct, threading, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(64)
print(server.getsockname()[1], flush=True)

def answer(connection):
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while connection.recv(64):
        connection.sendall(struct.pack("d", time.monotonic()))

while True:
    connection, _ = server.accept()
    threading.Thread(target=answer, args=(connection,), daemon=True).start()
"""


def render() -> int:
    total = 0
    for i in range(20_000):
        total += i * i
    return total


class NoTurn:
    def acquire(self):
        pass

    def release(self):
        pass


def lane(port: int, turn, waits: list[float], messages: int) -> None:
    connection = socket.create_connection(("127.0.0.1", port))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(messages):
        turn.acquire()
        render()
        turn.release()
        time.sleep(0.0002)  # the envelope and the message, without the turn
        turn.acquire()
        connection.sendall(b"c")
        (committed_at,) = struct.unpack("d", connection.recv(8))
        waits.append(time.monotonic() - committed_at)
        turn.release()  # with the dot
    connection.close()


def run(port: int, with_turn: bool, lanes: int, messages: int) -> list[float]:
    turn = threading.Lock() if with_turn else NoTurn()
    waits: list[float] = []
    threads = [
        threading.Thread(target=lane, args=(port, turn, waits, messages)) for _ in range(lanes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(waits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--messages", type=int, default=300, help="per lane and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        found = {False: [], True: []}
        for _ in range(args.rounds):
            for with_turn in (False, True):  # alternated, so drift touches both alike
                found[with_turn] += run(port, with_turn, args.lanes, args.messages)
    finally:
        server.kill()
        server.wait()
    print(f"{args.lanes} lanes, {args.rounds} x {args.messages} commits per lane")
    print("commit to dot     | median | 90th pct | 99th pct |  max")
    for with_turn, waits in found.items():
        waits.sort()

        def at(fraction, waits=waits):
            return waits[int(fraction * (len(waits) - 1))] * 1e6

        print(
            f"{'with the turn' if with_turn else 'without'}"
            f"{'':<{18 - len('with the turn' if with_turn else 'without')}}|"
            f" {statistics.median(waits) * 1e6:>4.0f} µs | {at(0.9):>5.0f} µs | "
            f"{at(0.99):>5.0f} µs | {waits[-1] * 1e6:>5.0f} µs"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
