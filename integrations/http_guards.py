"""Guards every HTTP request passes before any route: a body size limit that holds for chunked bodies,
and the browser security headers.

The limit is enforced on the bytes actually received, not on `Content-Length` alone: a chunked body
(no length) is cut off at the first byte over the limit with 413, so no route, signature check or
logger ever holds more than `MAX_BODY_BYTES` of a request.

A path may have a larger limit (the console's upload) that only an admission check grants, run on the
request's headers before any byte of the body is read (the upload: a live admin session, within its
byte budget): anyone else has the 64 KB limit there too, or 429 when over the budget.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = {"error": "too_large", "message": "送信内容が大きすぎます。", "message_en": "Request body too large."}
OVER_BUDGET = {"error": "rate_limited", "message": "短時間に送信できる量を超えました。しばらくしてからお試しください。",
               "message_en": "Upload budget exceeded; try again later."}

#: Whether a path's larger limit applies, decided from the headers alone (`Content-Length` or None):
#: "allow" (the larger limit), "default" (the app's limit) or "over_budget" (429 at once).
Verdict = Literal["allow", "default", "over_budget"]
Admit = Callable[[Scope, int | None], Awaitable[Verdict]]

#: Sent with every response. The pages load scripts and styles only from this origin, and no inline script, inline
#: style element or style attribute runs (tests/test_csp_browser.py opens every page in Chromium and counts
#: the violations: none, Swagger UI and the dashboard's SVG charts included).
SECURITY_HEADERS = {
    b"content-security-policy": (b"default-src 'self'; script-src 'self'; style-src 'self'; "
                                 b"img-src 'self' data:; connect-src 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}


class GuardMiddleware:
    """Pure ASGI middleware (it sees the body as it arrives, which BaseHTTPMiddleware does not)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES,
                 path_limits: dict[str, tuple[int, Admit]] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})  # a larger limit for a named path, if admitted (the upload)

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

        length = _content_length(scope)
        limit = self.max_body_bytes
        larger = self.path_limits.get(scope.get("path", ""))
        if larger is not None and scope.get("method") == "POST":
            verdict = await larger[1](scope, length)
            if verdict == "over_budget":
                await _refuse(send_with_headers, 429, OVER_BUDGET)
                return
            if verdict == "allow":
                limit = larger[0]
        if length is not None and length > limit:
            await _refuse(send_with_headers, 413, TOO_LARGE)
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
                        await _refuse(send_with_headers, 413, TOO_LARGE)
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


async def _refuse(send: Any, status: int, error: dict[str, str]) -> None:
    body = json.dumps(error, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
