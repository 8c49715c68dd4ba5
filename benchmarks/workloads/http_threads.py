"""HTTP threads: ``http.server.ThreadingHTTPServer`` on loopback, a thread per request.

The server computes each reply from its path; a few client threads fetch every item with
``urllib`` (one connection, hence one server thread, per request).  The result line is a
digest of every reply, in item order.

    python http_threads.py [--size S] [--clients N]
"""

from __future__ import annotations

import argparse
import hashlib
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = 3_000  # at --size 1


def reply_for(item: int) -> bytes:
    h = hashlib.sha256(f"item-{item}".encode())
    for _ in range(60):
        h = hashlib.sha256(h.digest())
    return f"{item} {h.hexdigest()}\n".encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        prefix = "/item/"
        if not self.path.startswith(prefix) or not self.path[len(prefix) :].isdigit():
            self.send_error(404)
            return
        body = reply_for(int(self.path[len(prefix) :]))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None  # no access log on stderr


def fetch(base: str, items: range, out: list[bytes]) -> None:
    # No proxy from the environment: every request goes straight to the loopback server.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for item in items:
        with opener.open(f"{base}/item/{item}", timeout=30) as response:
            out[item] = response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0, help="work relative to the default")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    args = parser.parse_args()
    if args.size <= 0 or args.clients < 1:
        parser.error("--size must be > 0 and --clients >= 1")
    requests = max(1, round(REQUESTS * args.size))
    out = [b""] * requests
    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        serving.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        clients = [
            threading.Thread(target=fetch, args=(base, range(c, requests, args.clients), out))
            for c in range(args.clients)
        ]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        server.shutdown()
        serving.join()
    if not all(out):
        raise SystemExit("http_threads: some requests got no reply")
    digest = hashlib.sha256(b"".join(out)).hexdigest()[:16]
    print(f"http_threads requests={requests} digest={digest}")


if __name__ == "__main__":
    main()
