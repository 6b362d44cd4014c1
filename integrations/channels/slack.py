"""Slack: direct messages and mentions via slack-bolt, buttons as Block Kit, replies through the outbox.

HTTP mode is mounted on the FastAPI app at `/slack/events` (events and
interactivity share the URL). The route checks the signature and the timestamp
(older than five minutes is refused) itself, then commits the event to the
webhook inbox (`integrations.channels.inbox`) before Slack gets its 200, and
bolt processes it from the store after the response: bolt's own HTTP handler
acknowledges first and runs the listener afterwards (slack-bolt's default,
`process_before_response=False`), so an event acknowledged just before a kill
was lost and Slack does not resend an acknowledged event. Slack's 3-second limit
holds whatever the answer costs. Retries (`X-Slack-Retry-Num`) carry the same
`event_id`: the inbox stores it once, and the engine keeps it as the platform
message id too. After a restart, stored events not processed are processed.
Socket Mode (`madoguchi channels slack-socket`) runs the same listeners for local use,
acknowledged by bolt (no inbox).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from urllib.parse import parse_qs
from datetime import UTC, datetime
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from slack_bolt import App, BoltRequest
from slack_bolt.adapter.starlette.handler import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.messages import InboundMessage, Reply
from bot.services import Services
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
from integrations.channels.inbox import WebhookInbox, event_key
from bot.programs import ProgramError, load_programs

log = logging.getLogger(__name__)

CHANNEL = "slack"
TEXT_LIMIT = 3000  # a section block holds 3000 characters
BUTTONS_PER_BLOCK = 25
_MENTION = re.compile(r"<@[A-Z0-9]+>\s*")
ACTION_ID = re.compile(r"^opt_\d+$")


def is_configured(settings: Settings) -> bool:
    return bool(settings.slack.bot_token and settings.slack.signing_secret)


def web_client(settings: Settings) -> WebClient:
    assert settings.slack.bot_token is not None
    return WebClient(token=settings.slack.bot_token.get_secret_value(), base_url=settings.slack.api_url)


def slack_escape(text: str) -> str:
    """User text as Slack shows it literally: `<!channel>`, `<https://…|label>` and `&` lose their meaning
    (Slack's own escaping of &, < and >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


#: Links and e-mail addresses are left as written (an address with 「_」 must stay the address).
_URL = re.compile(r"https?://\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: Marks Slack's mrkdwn reads as formatting (*bold*, _italic_, ~strike~, `code`), as the full-width characters
#: Japanese documents print them with (ingest's NFKC made them half-width: 「10:00~17:00、12/29~1/3」).
_FORMATTING = str.maketrans({"*": "＊", "_": "＿", "~": "～", "`": "｀"})


def mrkdwn(text: str) -> str:
    """A reply's text as Slack shows it literally in mrkdwn: Slack's escaping of &, < and >, and no
    formatting marks outside links (a quoted excerpt of a document is shown as the document says it)."""
    parts, last = [], 0
    for link in _URL.finditer(text):
        parts += [text[last:link.start()].translate(_FORMATTING), link.group()]
        last = link.end()
    parts.append(text[last:].translate(_FORMATTING))
    return slack_escape("".join(parts))


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
        messages = platform_messages(replies, TEXT_LIMIT, mrkdwn)
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


def build_app(settings: Settings, runtime: ChannelRuntime, staff_hooks: list[Any] | None = None, *,
              from_inbox: bool = False) -> App:
    """The bolt app; `staff_hooks` (the escalation capability) may register staff-channel listeners.

    `from_inbox`: the app dispatches events the `/slack/events` route has verified and stored, so it runs each
    listener to its end inside `dispatch` (`process_before_response`: the row is marked processed only after)
    and does not check a signature again (a replay after a restart is older than bolt's five minutes)."""
    assert settings.slack.bot_token is not None and settings.slack.signing_secret is not None
    app = App(token=settings.slack.bot_token.get_secret_value(),
              signing_secret=settings.slack.signing_secret.get_secret_value(),
              client=web_client(settings), token_verification_enabled=False, process_before_response=from_inbox,
              request_verification_enabled=not from_inbox)


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


def _readable(body: bytes, request: Request) -> dict[str, Any] | None:
    """The event envelope or the interaction payload, if the body is one we can read."""
    try:
        if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
            payload = parse_qs(body.decode())
            data = json.loads(payload["payload"][0]) if "payload" in payload else None
        else:
            data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("type"), str) else None


def _signed(verifier: SignatureVerifier, body: bytes, headers: dict[str, str]) -> bool:
    """Slack's v0 signature over a timestamp of at most five minutes ago; any malformed header is False."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    try:
        return verifier.is_valid_request(body, headers)
    except (ValueError, TypeError, OverflowError):
        return False


#: Envelope types stored before the 200 (anything else, url_verification, is answered by bolt at once).
STORED_TYPES = {"event_callback", "block_actions", "view_submission", "view_closed", "shortcut", "message_action",
                "block_suggestion"}


def stored_key(data: dict[str, Any], body: bytes) -> str:
    """One inbox row per Slack event: a retry carries the same `event_id`. Interactions are not retried by
    Slack: one row per distinct payload (the same body twice is one press)."""
    if data.get("type") == "event_callback":
        return event_key(data, "event_id")
    return f"{data['type']}:{hashlib.sha256(body).hexdigest()}"


def mount(api: FastAPI, settings: Settings, services: Services, runtime: ChannelRuntime,
          staff_hooks: list[Any] | None = None) -> App:
    bolt = build_app(settings, runtime, staff_hooks, from_inbox=True)
    handler = SlackRequestHandler(bolt)
    assert settings.slack.signing_secret is not None
    verifier = SignatureVerifier(settings.slack.signing_secret.get_secret_value())

    def process_stored(stored: dict[str, Any]) -> None:
        response = bolt.dispatch(BoltRequest(body=str(stored.get("raw") or ""), mode="http",
                                             headers={"content-type": str(stored.get("content_type") or "")}))
        if response.status >= 500:
            log.warning("slack event failed in its listener", extra={"status": response.status})

    inbox = WebhookInbox(services, CHANNEL, process_stored)
    runtime.inboxes.append(inbox)

    @api.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request, background: BackgroundTasks):  # type: ignore[no-untyped-def]
        body = await request.body()
        # Unsigned, stale or with a malformed timestamp: 401 here, before bolt (which would log the body).
        if not _signed(verifier, body, dict(request.headers)):
            return JSONResponse({"error": "invalid_signature", "message": "署名が正しくありません。"}, status_code=401)
        # Signed by Slack but not an event or interaction we can read: 400 here, not an error inside bolt.
        data = _readable(body, request)
        if data is None:
            return JSONResponse({"error": "invalid_body", "message": "内容を読み取れません。"}, status_code=400)
        if data["type"] not in STORED_TYPES:
            return await handler.handle(request)  # url_verification's challenge: nothing to store
        # Committed before Slack gets its 200: Slack never resends an acknowledged event.
        ids = await inbox.accept([(stored_key(data, body), {"raw": body.decode(),
                                                      "content_type": request.headers.get("content-type", "")})])
        background.add_task(inbox.process_ids, ids)
        return JSONResponse({"ok": True})

    return bolt
