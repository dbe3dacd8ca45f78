"""The ASGI `http` scope that tests hand to the application directly (without a server in front of it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def http_scope(
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    server: tuple[str, int] = ("127.0.0.1", 8000),
) -> dict[str, Any]:
    """A plain HTTP/1.1 request from 127.0.0.1 with `Host: 127.0.0.1` and any further `headers`."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": server,
    }
