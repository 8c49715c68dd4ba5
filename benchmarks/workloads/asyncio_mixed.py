"""asyncio mixed: a TCP echo server and its clients on loopback, plus ``asyncio.to_thread``.

Each round is one ``asyncio.run``: an event loop (epoll underneath) serves a line-echo
protocol to concurrent clients, which also hand hashing work to the loop's default
executor with ``asyncio.to_thread``.  The loop and its executor end with the round, so
every round starts its worker threads anew, as a program calling ``asyncio.run`` per
request batch does.  The result line is a digest of every reply and every thread result,
in order.

    python asyncio_mixed.py [--size S] [--clients N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib

ROUNDS = 350  # at --size 1
MESSAGES = 10  # per client per round
OFFLOADS = 12  # to_thread calls per round


def digest_of(data: bytes, times: int) -> bytes:
    h = hashlib.sha256(data).digest()
    for _ in range(times):
        h = hashlib.sha256(h).digest()
    return h


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def client(port: int, round_no: int, client_no: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    try:
        for m in range(MESSAGES):
            writer.write(f"round {round_no} client {client_no} message {m}\n".encode())
            await writer.drain()
            replies.append(await reader.readline())
    finally:
        writer.close()
        await writer.wait_closed()
    return b"".join(replies)


async def one_round(round_no: int, clients: int) -> bytes:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        offloads = [
            asyncio.to_thread(digest_of, f"{round_no}/{k}".encode(), 200) for k in range(OFFLOADS)
        ]
        talks = [client(port, round_no, c) for c in range(clients)]
        results = await asyncio.gather(*offloads, *talks)
    return b"".join(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0, help="work relative to the default")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients per round")
    args = parser.parse_args()
    if args.size <= 0 or args.clients < 1:
        parser.error("--size must be > 0 and --clients >= 1")
    rounds = max(1, round(ROUNDS * args.size))
    digest = hashlib.sha256()
    for r in range(rounds):
        digest.update(asyncio.run(one_round(r, args.clients)))
    print(f"asyncio_mixed rounds={rounds} digest={digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
