"""The Slack staff channel: tickets posted as Block Kit messages, claimed and answered in threads.

Posting: staff notifications (the outbox `bot.notify` writes) are delivered
here by the delivery worker. A new ticket becomes a channel message with the
summary, the last messages, the sources the bot showed and the buttons
「担当する」/「解決」; the user's follow-ups go into its thread.
Acting: a reply in a ticket's thread is relayed to the user on their own
channel (once per Slack event id); 「担当する」 claims the ticket atomically,
and a second staff member pressing it is told who has it.
Only the configured staff channel is listened to for staff actions.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select

from handlers.escalation import staff as staff_accounts
from handlers.escalation import tickets
from bot.notify import mark_delivered, pending_notifications
from bot.programs import catalog_for, may_see, staff_programs
from bot.services import Services
from bot.storage import audit
from bot.storage.models import StaffNotification
from handlers.escalation.models import Ticket
from integrations.channels.slack import classify, slack_escape, web_client

log = logging.getLogger(__name__)

REASON_JA = {"asked_human": "担当者を希望", "not_confident": "自動回答で確信なし", "not_helpful": "回答で解決せず",
             "rule": "ルール確認"}


#: Every post: no link previews (a user's link must not unfold into a page in the staff channel).
NO_UNFURL: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}


def ticket_blocks(ticket: Ticket) -> list[dict[str, Any]]:
    """The ticket as staff see it in Slack."""
    who = ticket.assignee.display_name if ticket.assignee else "未割り当て"
    header = (f"*{tickets.number(ticket.id)}*　{tickets.STATUS_LABELS.get(ticket.status, ticket.status)}　担当：{who}\n"
              f"理由：{REASON_JA.get(ticket.reason, ticket.reason)}　チャネル：{ticket.channel}　役割：{ticket.role}")
    lines = [f"{'👤' if m['from'] == 'user' else '🤖'} {slack_escape(str(m['text'])[:300])}" for m in ticket.transcript[-6:]]
    sources = [f"・{slack_escape(s.get('label') or s.get('title', ''))}" for s in ticket.sources[:3]]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*質問*\n{slack_escape(ticket.question[:1500]) or '（未入力）'}"}},
    ]
    if lines:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(lines)[:2900]}]})
    if sources:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "表示した資料\n" + "\n".join(sources)}]})
    if ticket.status in tickets.OPEN_STATUSES:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": "ticket_claim", "value": str(ticket.id), "style": "primary",
             "text": {"type": "plain_text", "text": "担当する"}},
            {"type": "button", "action_id": "ticket_resolve", "value": str(ticket.id),
             "text": {"type": "plain_text", "text": "解決"}},
        ]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                                                    "text": "このスレッドに返信すると、利用者に届きます。"}]})
    return blocks


class StaffChannelNotifier:
    """Delivers staff notifications to the Slack staff channel (one of the delivery worker's tasks)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.default_channel = services.settings.slack.staff_channel
        self.client: WebClient = web_client(services.settings)
        self.channel: str | None = self.default_channel

    def channel_for(self, program: str | None) -> str | None:
        """A program's own staff channel (`slack.staff_channel` in its file), else MADOGUCHI_SLACK__STAFF_CHANNEL."""
        catalog = catalog_for(self.services)
        own = catalog.programs[catalog.owner_id(program)].slack.staff_channel
        return own or self.default_channel

    def __call__(self) -> int:
        if not staff_channels(self.services):
            return 0
        delivered = 0
        with self.services.db.session() as session:
            ids = [n.id for n in pending_notifications(session)]
        for notification_id in ids:
            with self.services.db.session() as session:
                notification = session.get(StaffNotification, notification_id)
                if notification is None or notification.delivered_at is not None:
                    continue
                try:
                    if not self._post(session, notification):
                        continue  # waiting for the ticket's root message
                except SlackApiError as error:
                    notification.attempts += 1
                    log.warning("staff channel post failed: %s", classify(error))
                    continue
                mark_delivered(session, notification)
                delivered += 1
        return delivered

    def _post(self, session: Any, notification: StaffNotification) -> bool:
        ticket_id = (notification.data or {}).get("ticket_id")
        ticket = session.get(Ticket, ticket_id) if ticket_id else None
        self.channel = self.channel_for(ticket.program if ticket else (notification.data or {}).get("program"))
        if not self.channel:
            return False  # no staff channel for this program: the console shows it
        if ticket is None:
            self.client.chat_postMessage(channel=self.channel, **NO_UNFURL,
                                         text=slack_escape(f"{notification.title}\n{notification.body}"[:3000]))
            return True
        if notification.kind == "ticket.created" or ticket.slack_ts is None:
            if notification.kind != "ticket.created":
                return False
            response = self.client.chat_postMessage(channel=self.channel, text=slack_escape(notification.title),
                                                    blocks=ticket_blocks(ticket), **NO_UNFURL)
            ticket.slack_ts = response["ts"]
            return True
        if notification.kind == "ticket.overdue":  # re-post so it is seen, and link the thread
            self.client.chat_postMessage(channel=self.channel, thread_ts=ticket.slack_ts, reply_broadcast=True,
                                         text=slack_escape(notification.title), **NO_UNFURL)
            return True
        text = notification.body or notification.title
        prefix = {"ticket.user_message": "👤 ", "ticket.resolved": "✅ ", "ticket.closed": "🚫 "}.get(notification.kind, "")
        self.client.chat_postMessage(channel=self.channel, thread_ts=ticket.slack_ts, **NO_UNFURL,
                                     text=prefix + slack_escape(text if notification.kind == "ticket.user_message"
                                                                else notification.title))
        if notification.kind in ("ticket.resolved", "ticket.closed"):
            self.client.chat_update(channel=self.channel, ts=ticket.slack_ts, text=slack_escape(notification.title),
                                    blocks=ticket_blocks(ticket))
        return True


def staff_channels(services: Services) -> set[str]:
    """MADOGUCHI_SLACK__STAFF_CHANNEL and every program's own staff channel."""
    channels = {p.slack.staff_channel for p in catalog_for(services) if p.slack.staff_channel}
    return channels | ({services.settings.slack.staff_channel} if services.settings.slack.staff_channel else set())


def staff_hooks(services: Services) -> list[Any]:
    """Listeners for the staff channels, registered before the user listeners of `integrations.channels.slack`.

    A staff member acts only on tickets of the programs they work for (`staff add --program`, matched by
    their Slack user id; admins on all): anything else is refused with a note only they see."""
    channels = staff_channels(services)
    if not channels:
        return []
    catalog = catalog_for(services)

    def channel_of(body: dict[str, Any]) -> str:
        event = body.get("event") or {}
        return str(event.get("channel") or (body.get("channel") or {}).get("id") or "")

    def in_staff_channel(body: dict[str, Any]) -> bool:
        return channel_of(body) in channels

    def allowed(session: Any, account: Any, ticket: Ticket, client: WebClient, channel: str, user: str) -> bool:
        if may_see(staff_programs(account, catalog), ticket.program, catalog):
            return True
        audit.record(session, "ticket.refused", subject_type="ticket", subject_id=ticket.id,
                     data={"staff": account.username, "via": "slack"})
        _ephemeral(client, channel, user, "この事業のお問い合わせは担当できません（担当事業が違います）。")
        return False

    def register(app: App) -> None:
        @app.event("message", matchers=[in_staff_channel])
        def staff_thread_reply(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
            if event.get("bot_id") or event.get("subtype") or not event.get("thread_ts"):
                return
            with services.db.session() as session:
                ticket = session.execute(select(Ticket).where(Ticket.slack_ts == event["thread_ts"])).scalar_one_or_none()
                if ticket is None:
                    return
                account = staff_accounts.for_slack_user(session, event["user"])
                channel = channel_of(body)
                if not allowed(session, account, ticket, client, channel, event["user"]):
                    return
                try:
                    tickets.staff_reply(session, ticket, account, event.get("text") or "", via="slack",
                                        platform_id=body.get("event_id"))
                except tickets.TicketError:
                    _ephemeral(client, channel, event["user"], "このお問い合わせは終了しています。利用者には届きません。")

        @app.action("ticket_claim", matchers=[in_staff_channel])
        def claim(ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
            ack()
            user = body["user"]["id"]
            with services.db.session() as session:
                account = staff_accounts.for_slack_user(session, user, body["user"].get("name"))
                channel = channel_of(body)
                target = session.get(Ticket, int(action["value"]))
                if target is None or not allowed(session, account, target, client, channel, user):
                    return
                try:
                    ticket = tickets.claim(session, int(action["value"]), account)
                except tickets.TicketError as error:
                    message = (f"{error.who}さんが既に担当しています。" if error.reason == "claimed_by_other"
                               else "このお問い合わせは担当できる状態ではありません。")
                    _ephemeral(client, channel, user, message)
                    return
                _update_root(client, channel, ticket)

        @app.action("ticket_resolve", matchers=[in_staff_channel])
        def resolve(ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
            ack()
            user = body["user"]["id"]
            with services.db.session() as session:
                account = staff_accounts.for_slack_user(session, user, body["user"].get("name"))
                ticket = session.get(Ticket, int(action["value"]))
                channel = channel_of(body)
                if ticket is None or not allowed(session, account, ticket, client, channel, user):
                    return
                try:
                    tickets.resolve(session, ticket, actor=account.username)
                except tickets.TicketError:
                    _ephemeral(client, channel, user, "このお問い合わせは既に終了しています。")

    return [register]


def _ephemeral(client: WebClient, channel: str, user: str, text: str) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError:
        log.warning("ephemeral message failed")


def _update_root(client: WebClient, channel: str, ticket: Ticket) -> None:
    if not ticket.slack_ts:
        return
    try:
        client.chat_update(channel=channel, ts=ticket.slack_ts, text=tickets.number(ticket.id),
                           blocks=ticket_blocks(ticket))
    except SlackApiError:
        log.warning("could not update the ticket message")
