"""Helpers for the security tests: raw HTTP on a socket (chunked bodies), timing, and log files."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def chunked_post(url: str, path: str, total_bytes: int, chunk: int = 64 * 1024, timeout: float = 20,
                 headers: dict[str, str] | None = None,
                 content_type: str = "application/json") -> tuple[int | None, float]:
    """POST `total_bytes` with Transfer-Encoding: chunked (no Content-Length), reading the answer while
    sending. Returns (status or None, seconds until the status line arrived)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Type: {content_type}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    sock.sendall((head + "\r\n").encode())
    started = time.monotonic()

    def pump() -> None:
        piece = b"a" * chunk
        sent = 0
        try:
            while sent < total_bytes:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    status = _status(sock)
    elapsed = time.monotonic() - started
    sock.close()
    sender.join(timeout=5)
    return status, elapsed


def _status(sock: socket.socket) -> int | None:
    """The status of the response's first line; None if none came before the socket's timeout."""
    data = b""
    try:
        while b"\r\n" not in data:
            piece = sock.recv(4096)
            if not piece:
                break
            data += piece
    except OSError:
        pass
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else None


def declared_post(url: str, path: str, length: int, headers: dict[str, str] | None = None,
                  wait: float = 5) -> int | None:
    """Send only the head of a POST declaring a `length`-byte body, and no body: the status the server answers
    within `wait` seconds without reading it (None when it waits for the body, as it does for an admitted one)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=wait)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n")
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    sock.sendall((head + "\r\n").encode())
    status = _status(sock)  # None: timed out, the server is waiting for the body
    sock.close()
    return status


def log_events(log_file: Path) -> list[dict]:  # type: ignore[type-arg]
    if not log_file.exists():
        return []
    return [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines() if line.strip()]


@contextmanager
def web_visitor(url: str, timeout: float = 30, headers: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    """A client as the web page is one: it opens its session (the cookie) before its first message and sends
    the session's CSRF token with every request, as chat.js does."""
    with httpx.Client(base_url=url, timeout=timeout, headers=headers) as client:
        client.headers["X-CSRF-Token"] = client.post("/api/chat/session").json()["csrf"]
        yield client
