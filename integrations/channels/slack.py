"""Slack: direct messages and mentions via slack-bolt, buttons as Block Kit, replies through the outbox.

HTTP mode is mounted on the FastAPI app at `/slack/events` (events and
interactivity share the URL); bolt verifies the signature and the timestamp
(older than five minutes is refused) and acknowledges at once, and the
listener runs after the acknowledgement, so Slack's 3-second limit holds
whatever the answer costs. Retries (`X-Slack-Retry-Num`) carry the same
`event_id`, which the engine stores as the platform message id: a retry
returns the stored replies and queues nothing. Socket Mode
(`madoguchi channels slack-socket`) runs the same app for local use.
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qs
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.messages import InboundMessage, Reply
from bot.settings import Settings
from bot.storage.models import OutboundMessage
from integrations.channels.delivery import (
    ChannelRuntime,
    PermanentSendError,
    TransientSendError,
    already_sent,
    mark_progress,
    platform_messages,
)

log = logging.getLogger(__name__)

CHANNEL = "slack"
TEXT_LIMIT = 3000  # a section block holds 3000 characters
BUTTONS_PER_BLOCK = 25
_MENTION = re.compile(r"<@[A-Z0-9]+>\s*")
ACTION_ID = re.compile(r"^opt_\d+$")


def is_configured(settings: Settings) -> bool:
    return bool(settings.slack_bot_token and settings.slack_signing_secret)


def web_client(settings: Settings) -> WebClient:
    assert settings.slack_bot_token is not None
    return WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)


def blocks_for(text: str, reply: Reply | None) -> list[dict[str, Any]]:
    """A section with the text, then the reply's options as buttons (value = option value)."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text or " "}}]
    options = reply.options if reply else []
    for start in range(0, len(options), BUTTONS_PER_BLOCK):
        chunk = options[start: start + BUTTONS_PER_BLOCK]
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": f"opt_{start + i}", "value": option.value[:2000],
             "text": {"type": "plain_text", "text": option.label[:75], "emoji": True}}
            for i, option in enumerate(chunk)]})
    return blocks


class SlackSender:
    channel = CHANNEL

    def __init__(self, settings: Settings) -> None:
        self.client = web_client(settings)

    def send(self, row: OutboundMessage, replies: list[Reply]) -> None:
        context = (row.payload or {}).get("context") or {}
        target = context.get("channel") or row.external_user_id
        messages = platform_messages(replies, TEXT_LIMIT)
        for index in range(already_sent(row), len(messages)):
            text, reply = messages[index]
            try:
                self.client.chat_postMessage(channel=target, text=text, blocks=blocks_for(text, reply),
                                             thread_ts=context.get("thread_ts"))
            except SlackApiError as error:
                raise classify(error) from error
            except OSError as error:  # network
                raise TransientSendError(str(error)) from error
            mark_progress(row, index + 1)


def classify(error: SlackApiError) -> Exception:
    status = getattr(error.response, "status_code", 0)
    if status == 429 or status >= 500:
        retry_after = error.response.headers.get("Retry-After") or error.response.headers.get("retry-after")
        return TransientSendError(f"slack {status}", float(retry_after) if retry_after else None)
    return PermanentSendError(f"slack {status}: {error.response.get('error')}")


def _timestamp(ts: str | None) -> datetime:
    if not ts:
        return datetime.now(UTC)
    return datetime.fromtimestamp(float(ts), UTC)


def build_app(settings: Settings, runtime: ChannelRuntime, staff_hooks: list[Any] | None = None) -> App:
    """The bolt app; `staff_hooks` (the escalation capability) may register staff-channel listeners."""
    assert settings.slack_bot_token is not None and settings.slack_signing_secret is not None
    app = App(token=settings.slack_bot_token.get_secret_value(),
              signing_secret=settings.slack_signing_secret.get_secret_value(),
              client=web_client(settings), token_verification_enabled=False, process_before_response=False)

    from bot.programs import ProgramError, load_programs

    try:
        catalog = load_programs(settings)
    except ProgramError:
        catalog = None

    def receive(user: str, body: dict[str, Any], *, text: str | None = None, choice: str | None = None,
                message_id: str, ts: str | None, context: dict[str, Any]) -> None:
        # Slack by channel mapping: a mention in a channel a program lists belongs to that program.
        program = catalog.program_of_slack_channel(context.get("channel")) if catalog else None
        runtime.receive(InboundMessage(channel=CHANNEL, external_user_id=user, text=text, choice=choice,
                                       platform_message_id=message_id, timestamp=_timestamp(ts),
                                       program=program.id if program else None, reply_context=context))

    for hook in staff_hooks or []:
        hook(app)

    @app.event("message")
    def on_message(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("bot_id") or event.get("subtype") or event.get("channel_type") != "im":
            return  # our own posts, edits, joins; channel messages reach us as mentions
        receive(event["user"], body, text=event.get("text"), message_id=body.get("event_id") or event["ts"],
                ts=event.get("ts"), context={"channel": event["channel"]})

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("bot_id"):
            return
        text = _MENTION.sub("", event.get("text") or "").strip() or "メニュー"
        receive(event["user"], body, text=text, message_id=body.get("event_id") or event["ts"], ts=event.get("ts"),
                context={"channel": event["channel"], "thread_ts": event.get("thread_ts") or event["ts"]})

    @app.action(ACTION_ID)
    def on_button(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        channel = (body.get("channel") or {}).get("id") or body["user"]["id"]
        message = body.get("message") or {}
        context = {"channel": channel}
        if message.get("thread_ts"):
            context["thread_ts"] = message["thread_ts"]
        receive(body["user"]["id"], body, choice=action.get("value"),
                message_id=f"action:{message.get('ts', '')}:{action.get('action_ts', '')}",
                ts=action.get("action_ts"), context=context)

    return app


def _readable(body: bytes, request: Request) -> bool:
    try:
        if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
            payload = parse_qs(body.decode())
            return "payload" in payload and isinstance(json.loads(payload["payload"][0]), dict)
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("type"), str)


def _signed(verifier: SignatureVerifier, body: bytes, headers: dict[str, str]) -> bool:
    """Slack's v0 signature over a timestamp of at most five minutes ago; any malformed header is False."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    try:
        return verifier.is_valid_request(body, headers)
    except (ValueError, TypeError, OverflowError):
        return False


def mount(api: FastAPI, settings: Settings, runtime: ChannelRuntime, staff_hooks: list[Any] | None = None) -> App:
    bolt = build_app(settings, runtime, staff_hooks)
    handler = SlackRequestHandler(bolt)
    assert settings.slack_signing_secret is not None
    verifier = SignatureVerifier(settings.slack_signing_secret.get_secret_value())

    @api.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request):  # type: ignore[no-untyped-def]
        body = await request.body()
        # Unsigned, stale or with a malformed timestamp: 401 here, before bolt (which would log the body).
        if not _signed(verifier, body, dict(request.headers)):
            return JSONResponse({"error": "invalid_signature", "message": "署名が正しくありません。"}, status_code=401)
        # Signed by Slack but not an event or interaction we can read: 400 here, not an error inside bolt.
        if not _readable(body, request):
            return JSONResponse({"error": "invalid_body", "message": "内容を読み取れません。"}, status_code=400)
        return await handler.handle(request)

    return bolt
