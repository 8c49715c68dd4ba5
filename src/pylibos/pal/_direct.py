"""The plain Linux host (Gramine-direct): pipes are bare sockets, threads are unbounded."""

from __future__ import annotations

from ._host import Host


class DirectHost(Host):
    kind = "direct"
