"""Helpers for the security tests: raw HTTP on a socket (chunked bodies), timing, and log files."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path


def chunked_post(url: str, path: str, total_bytes: int, chunk: int = 64 * 1024, timeout: float = 20,
                 headers: dict[str, str] | None = None) -> tuple[int | None, float]:
    """POST `total_bytes` with Transfer-Encoding: chunked (no Content-Length), reading the answer while
    sending. Returns (status or None, seconds until the status line arrived)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
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
    data = b""
    try:
        while b"\r\n" not in data:
            piece = sock.recv(4096)
            if not piece:
                break
            data += piece
    except OSError:
        pass
    elapsed = time.monotonic() - started
    sock.close()
    sender.join(timeout=5)
    line = data.split(b"\r\n", 1)[0].split()
    return (int(line[1]) if len(line) > 1 else None), elapsed


def log_events(log_file: Path) -> list[dict]:  # type: ignore[type-arg]
    if not log_file.exists():
        return []
    return [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines() if line.strip()]
