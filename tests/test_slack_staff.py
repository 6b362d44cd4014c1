"""Staff answer from the Slack staff channel: real signed Slack payloads into the slack-bolt app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.services import Services
from handlers.escalation.models import Ticket, TicketMessage
from integrations.web import create_app
from tests import fake_platforms as fp
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer, eventually, make_settings

STAFF_CHANNEL = "C0STAFF"


class StaffRig:
    def __init__(self, services: Services, platform: fp.FakePlatforms, url: str) -> None:
        self.services, self.platform, self.url = services, platform, url

    def user(self, text: str | None = None, choice: str | None = None) -> list[dict]:
        body = {k: v for k, v in {"user_id": "web-user", "text": text, "choice": choice}.items() if v}
        return httpx.post(f"{self.url}/api/chat", json=body, timeout=30, headers=CHAT_HEADERS).json()["replies"]

    def pending(self) -> list[dict]:
        return httpx.post(f"{self.url}/api/chat/pending", json={"user_id": "web-user"}, timeout=30,
                          headers=CHAT_HEADERS).json()["replies"]

    def slack_post(self, body: str, form: bool = False) -> httpx.Response:
        kind = "application/x-www-form-urlencoded" if form else "application/json"
        return httpx.post(f"{self.url}/slack/events", content=body.encode(),
                          headers=fp.slack_headers(body) | {"Content-Type": kind}, timeout=30)

    def press(self, action_id: str, ticket_id: int, user: str, channel: str = STAFF_CHANNEL) -> httpx.Response:
        return self.slack_post(fp.slack_button_payload(str(ticket_id), user=user, channel=channel,
                                                       action_id=action_id, action_ts=f"{time.time():.6f}"), form=True)

    def ticket(self) -> Ticket:
        with self.services.db.session() as session:
            ticket = session.execute(select(Ticket)).scalar_one()
            session.expunge(ticket)
            return ticket


@pytest.fixture
def staff_rig(tmp_path: Path, database_url: str | None) -> Iterator[StaffRig]:
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(tmp_path, database_url, slack__bot_token="xoxb-test",
                                 slack__signing_secret=fp.SLACK_SECRET, slack__api_url=f"{fake.url}/slack/api/",
                                 slack__staff_channel=STAFF_CHANNEL, hours__open="00:00", hours__close="23:59",
                                 hours__year_end_closed="12-31..12-31", staff__api_token=CHAT_TOKEN)
        services = Services.create(settings)
        with LiveServer(create_app(services)) as server:
            yield StaffRig(services, platform, server.url)
        services.close()


def test_ticket_claimed_answered_and_resolved_in_the_slack_thread(staff_rig: StaffRig) -> None:
    rig = staff_rig
    rig.user("担当者と話したい")
    rig.user("補助金の対象経費について相談したいです")
    post = rig.platform.wait_for("slack", 1, "chat.postMessage")[0]
    assert post.body["channel"] == STAFF_CHANNEL and "T-" in post.body["text"]
    actions = [e["action_id"] for b in post.body["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert actions == ["ticket_claim", "ticket_resolve"]
    ticket = eventually(lambda: rig.ticket() if rig.ticket().slack_ts else None)

    # Two staff press 「担当する」: the first gets it, the second is told who has it.
    assert rig.press("ticket_claim", ticket.id, "U0STAFF1").status_code == 200
    eventually(lambda: rig.ticket().status == "claimed")
    update = rig.platform.wait_for("slack", 1, "chat.update")[0]
    assert "担当：u0staff1" in str(update.body["blocks"]) or "担当：U0STAFF1" in str(update.body["blocks"])
    rig.press("ticket_claim", ticket.id, "U0STAFF2")
    ephemeral = rig.platform.wait_for("slack", 1, "chat.postEphemeral")[0]
    assert "既に担当しています" in ephemeral.body["text"] and ephemeral.body["user"] == "U0STAFF2"

    # A reply in the thread reaches the user on their own channel (web), once even if Slack retries.
    body = fp.slack_message_event("対象経費は要領の別表1をご確認ください。", user="U0STAFF1", event_id="EvStaff1",
                                  channel=STAFF_CHANNEL, thread_ts=ticket.slack_ts, channel_type="channel")
    assert rig.slack_post(body).status_code == 200
    rig.slack_post(body)
    answer = eventually(lambda: rig.pending())
    assert "【担当者からの回答】" in answer[0]["text"] and "別表1" in answer[0]["text"]
    with rig.services.db.session() as session:
        assert session.execute(select(func.count()).select_from(TicketMessage).where(
            TicketMessage.author == "staff")).scalar_one() == 1

    # The user's answer goes back into the same thread.
    rig.user("ありがとうございます。別表1の3番は対象ですか")
    follow = eventually(lambda: [c for c in rig.platform.of("slack", "chat.postMessage")
                               if c.body.get("thread_ts") == ticket.slack_ts and "別表1の3番" in c.body["text"]])
    assert follow[0].body["channel"] == STAFF_CHANNEL

    # 「解決」: the user gets the satisfaction survey.
    rig.press("ticket_resolve", ticket.id, "U0STAFF1")
    survey = eventually(lambda: rig.pending())
    assert "いかがでしたか" in survey[-1]["text"] and len(survey[-1]["options"]) == 5
    rig.user(choice=survey[-1]["options"][0]["value"])
    done = rig.ticket()
    assert done.status == "resolved" and done.satisfaction == 5 and done.first_response_at is not None


def test_staff_buttons_outside_the_staff_channel_do_nothing(staff_rig: StaffRig) -> None:
    rig = staff_rig
    rig.user("担当者と話したい")
    rig.user("相談です")
    ticket = eventually(lambda: rig.ticket() if rig.ticket().slack_ts else None)
    # A user forging a staff button from their DM, and a forged signature: nothing changes.
    assert rig.press("ticket_claim", ticket.id, "U0USER", channel="D0USER").status_code in (200, 404)
    body = fp.slack_button_payload(str(ticket.id), user="U0USER", channel=STAFF_CHANNEL, action_id="ticket_claim")
    forged = httpx.post(f"{rig.url}/slack/events", content=body.encode(),
                        headers=fp.slack_headers(body, secret="nope") | {
                            "Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status_code == 401
    time.sleep(1.0)
    assert rig.ticket().status == "open" and rig.ticket().assignee_id is None
