"""Guards every HTTP request passes before any route: a body size limit that holds for chunked bodies,
and the browser security headers.

The limit is enforced on the bytes actually received, not on `Content-Length` alone: a chunked body
(no length) is cut off at the first byte over the limit with 413, so no route, signature check or
logger ever holds more than `MAX_BODY_BYTES` of a request.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = {"error": "too_large", "message": "送信内容が大きすぎます。", "message_en": "Request body too large."}

#: Sent with every response. The pages load scripts and styles only from this origin (inline ones are ours).
SECURITY_HEADERS = {
    b"content-security-policy": (b"default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                 b"style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}


class GuardMiddleware:
    """Pure ASGI middleware (it sees the body as it arrives, which BaseHTTPMiddleware does not)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES,
                 path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})  # a larger limit for a named path (the console's upload)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = refused = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if refused:
                return  # we answered 413 already; whatever the app says after that is dropped
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS.items() if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        limit = self.path_limits.get(scope.get("path", ""), self.max_body_bytes)
        length = _content_length(scope)
        if length is not None and length > limit:
            await _too_large(send_with_headers)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now and tell the app the client is gone: nothing reads further bytes.
                    if not started:
                        await _too_large(send_with_headers)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except Exception:
            if not refused:
                raise


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Any) -> None:
    body = json.dumps(TOO_LARGE, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
