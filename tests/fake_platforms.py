"""A local stand-in for the Slack, Telegram and LINE APIs: records every call the SDKs make.

The adapters talk to it through their real SDKs (slack_sdk WebClient,
python-telegram-bot, line-bot-sdk) with only the base URL changed, so tests
see the platform calls exactly as they leave our code. `fail_next` makes the
next calls answer 429 with Retry-After, like a rate-limited platform.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.conftest import eventually

SLACK_SECRET = "slack-signing-secret-for-tests"
LINE_SECRET = "line-channel-secret-for-tests"
TELEGRAM_TOKEN = "123456:TEST-token"
TELEGRAM_SECRET = "telegram-webhook-secret"
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass
class Call:
    platform: str
    method: str
    body: dict[str, Any]
    at: float
    authorization: str | None = None  # whose token sent it (LINE: the Authorization header; Telegram: the bot token)


@dataclass
class FakePlatforms:
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: rich menus LINE holds: id -> the request that created it
    rich_menus: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: LIFF ID tokens LINE's verify endpoint knows: token -> claims (sub, aud, exp ...)
    id_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: seconds LINE's verify endpoint takes to answer (a slow day at LINE)
    verify_delay: float = 0.0
    #: Telegram updates waiting for a bot's getUpdates (long polling): bot token -> updates
    telegram_updates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def issue_id_token(self, user_id: str, channel_id: str, expires_in: int = 600, name: str = "山田") -> str:
        """An ID token as LIFF's getIDToken() would give the page (opaque here: only LINE verifies it)."""
        token = f"eyJ.fake.{len(self.id_tokens)}.{user_id}"
        now = int(time.time())
        self.id_tokens[token] = {"iss": "https://access.line.me", "sub": user_id, "aud": channel_id,
                                 "exp": now + expires_in, "iat": now - 5, "amr": ["linesso"], "name": name}
        return token

    def fail_next(self, platform: str, times: int = 1, retry_after: int = 1) -> None:
        self.failures[platform] = [retry_after] * times

    def of(self, platform: str, method: str | None = None) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.platform == platform and (method is None or c.method == method)]

    def wait_for(self, platform: str, count: int, method: str | None = None, timeout: float = 20) -> list[Call]:
        """The calls once there are `count` of them."""
        def enough() -> list[Call] | None:
            found = self.of(platform, method)
            return found if len(found) >= count else None

        return eventually(enough, timeout, 0.05,
                          lambda: f"expected {count} {platform} {method} calls, got {self.of(platform, method)}")

    def _record(self, platform: str, method: str, body: dict[str, Any], authorization: str | None = None) -> int | None:
        with self.lock:
            self.calls.append(Call(platform, method, body, time.monotonic(), authorization))
            pending = self.failures.get(platform)
            return pending.pop(0) if pending else None

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/slack/api/{method}")
        async def slack(method: str, request: Request) -> JSONResponse:
            body = await _body(request)
            if method == "auth.test":
                return JSONResponse({"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1"})
            retry_after = self._record("slack", method, body)
            if retry_after is not None:
                return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429,
                                    headers={"Retry-After": str(retry_after)})
            return JSONResponse({"ok": True, "channel": body.get("channel"), "ts": f"{time.time():.6f}"})

        @api.post("/telegram/bot{token}/{method}")
        async def telegram(token: str, method: str, request: Request) -> JSONResponse:
            body = await _body(request)
            if method == "getMe":
                return JSONResponse({"ok": True, "result": {"id": 999, "is_bot": True, "first_name": "madoguchi",
                                                            "username": "madoguchi_bot"}})
            if method == "getUpdates":  # long polling: what is queued for this bot, else a short wait
                with self.lock:
                    waiting = self.telegram_updates.pop(token, [])
                if not waiting:
                    await asyncio.sleep(0.2)
                return JSONResponse({"ok": True, "result": waiting})
            retry_after = self._record("telegram", method, body, token)  # which bot sent it
            if retry_after is not None:
                return JSONResponse({"ok": False, "error_code": 429, "description": "Too Many Requests",
                                     "parameters": {"retry_after": retry_after}}, status_code=429)
            if method == "sendMessage":
                return JSONResponse({"ok": True, "result": {
                    "message_id": len(self.calls), "date": int(time.time()), "text": body.get("text", ""),
                    "chat": {"id": int(body.get("chat_id", 0)), "type": "private"}}})
            return JSONResponse({"ok": True, "result": True})

        @api.get("/line/v2/bot/richmenu/list")
        async def line_richmenu_list() -> JSONResponse:
            self._record("line", "richmenu.list", {})
            return JSONResponse({"richmenus": [{"richMenuId": key, **value} for key, value in self.rich_menus.items()]})

        @api.post("/line/v2/bot/richmenu")
        async def line_richmenu_create(request: Request) -> JSONResponse:
            body = await _body(request)
            self._record("line", "richmenu.create", body)
            menu_id = f"richmenu-{len(self.calls):04d}"
            self.rich_menus[menu_id] = body
            return JSONResponse({"richMenuId": menu_id})

        @api.post("/line/v2/bot/richmenu/{menu_id}/content")
        async def line_richmenu_image(menu_id: str, request: Request) -> JSONResponse:
            raw = await request.body()
            self._record("line", "richmenu.image", {"menu": menu_id, "content_type": request.headers.get(
                "content-type"), "bytes": len(raw), "png": raw[:8] == b"\x89PNG\r\n\x1a\n",
                "authorization": request.headers.get("authorization")})
            if menu_id not in self.rich_menus:
                return JSONResponse({"message": "Not found"}, status_code=404)
            return JSONResponse({})

        @api.post("/line/v2/bot/user/all/richmenu/{menu_id}")
        async def line_richmenu_default(menu_id: str) -> JSONResponse:
            self._record("line", "richmenu.default", {"menu": menu_id})
            return JSONResponse({})

        @api.delete("/line/v2/bot/richmenu/{menu_id}")
        async def line_richmenu_delete(menu_id: str) -> JSONResponse:
            self._record("line", "richmenu.delete", {"menu": menu_id})
            self.rich_menus.pop(menu_id, None)
            return JSONResponse({})

        @api.post("/line/oauth2/v2.1/verify")
        async def line_verify_id_token(request: Request) -> JSONResponse:
            """LINE Login's ID token verification, with its documented error answers."""
            body = await _body(request)
            self._record("line", "verify", body)
            await asyncio.sleep(self.verify_delay)
            claims = self.id_tokens.get(body.get("id_token", ""))
            if claims is None:
                return JSONResponse({"error": "invalid_request", "error_description": "Invalid IdToken."}, 400)
            if claims["exp"] <= time.time():
                return JSONResponse({"error": "invalid_request", "error_description": "IdToken expired."}, 400)
            if body.get("client_id") != claims["aud"]:
                return JSONResponse({"error": "invalid_request", "error_description": "Invalid IdToken Audience."},
                                    400)
            return JSONResponse(claims)

        @api.post("/line/v2/bot/message/{kind}")
        async def line(kind: str, request: Request) -> JSONResponse:
            body = await _body(request)
            retry_after = self._record("line", kind, body, request.headers.get("authorization"))
            if retry_after is not None:
                return JSONResponse({"message": "rate limited"}, status_code=429,
                                    headers={"Retry-After": str(retry_after)})
            if kind == "reply" and body.get("replyToken") == "expired-token":
                return JSONResponse({"message": "Invalid reply token"}, status_code=400)
            return JSONResponse({"sentMessages": [{"id": "1", "quoteToken": "q"}]})

        return api


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    kind = request.headers.get("content-type", "")
    if "json" in kind:
        return json.loads(raw or b"{}")
    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    for key in ("reply_markup", "blocks"):
        if isinstance(form.get(key), str):
            form[key] = json.loads(form[key])
    return form


# ------------------------------------------------------------ signed requests
def slack_headers(body: str, timestamp: int | None = None, secret: str = SLACK_SECRET) -> dict[str, str]:
    """Slack's v0 signing: HMAC-SHA256 over 'v0:{timestamp}:{body}'."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slack_message_event(text: str, user: str = "U123", event_id: str = "Ev001", channel: str = "D123",
                        thread_ts: str | None = None, channel_type: str = "im") -> str:
    event = {"type": "message", "channel_type": channel_type, "channel": channel, "user": user, "text": text,
             "ts": f"{time.time():.6f}", "client_msg_id": event_id}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return json.dumps({"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                       "event_id": event_id, "event_time": int(time.time()), "event": event}, ensure_ascii=False)


def slack_button_payload(value: str, user: str = "U123", channel: str = "D123", action_ts: str = "1.1",
                         action_id: str = "opt_0") -> str:
    payload = {"type": "block_actions", "user": {"id": user, "name": user.lower()}, "api_app_id": "A1",
               "token": "legacy",
               "team": {"id": "T1"}, "trigger_id": "trig", "channel": {"id": channel},
               "container": {"type": "message", "message_ts": "1.0"}, "message": {"ts": "1.0"},
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b1", "value": value,
                            "action_ts": action_ts}]}
    return urlencode({"payload": json.dumps(payload, ensure_ascii=False)})


def line_headers(body: str, secret: str = LINE_SECRET) -> dict[str, str]:
    """LINE's signing: base64(HMAC-SHA256(channel secret, body))."""
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return {"X-Line-Signature": base64.b64encode(digest).decode(), "Content-Type": "application/json"}


def line_body(event: dict[str, Any], event_id: str = "01HEVENT0001", redelivery: bool = False,
              user: str = "U-line-1", reply_token: str = "reply-token-1") -> str:
    full = {"webhookEventId": event_id, "deliveryContext": {"isRedelivery": redelivery},
            "timestamp": int(time.time() * 1000), "mode": "active", "replyToken": reply_token,
            "source": {"type": "user", "userId": user}, **event}
    return json.dumps({"destination": "Ubot", "events": [full]}, ensure_ascii=False)


def line_text(text: str) -> dict[str, Any]:
    return {"type": "message", "message": {"type": "text", "id": "m1", "text": text, "quoteToken": "q"}}


def line_postback(data: str) -> dict[str, Any]:
    return {"type": "postback", "postback": {"data": data}}


def line_location(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "message", "message": {"type": "location", "id": "m2", "latitude": lat, "longitude": lon,
                                           "address": "東京都千代田区"}}


def telegram_text(text: str, update_id: int, user: int = 4242) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": int(time.time()), "text": text,
        "chat": {"id": user, "type": "private"}, "from": {"id": user, "is_bot": False, "first_name": "太郎"}}}


def telegram_location(lat: float, lon: float, update_id: int, user: int = 4242) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": int(time.time()), "location": {"latitude": lat, "longitude": lon},
        "chat": {"id": user, "type": "private"}, "from": {"id": user, "is_bot": False, "first_name": "太郎"}}}


def telegram_button(data: str, update_id: int, user: int = 4242) -> dict[str, Any]:
    return {"update_id": update_id, "callback_query": {
        "id": f"cb{update_id}", "chat_instance": "ci", "data": data,
        "from": {"id": user, "is_bot": False, "first_name": "太郎"},
        "message": {"message_id": 1, "date": int(time.time()), "chat": {"id": user, "type": "private"},
                    "text": "…"}}}
