"""Linking a chat account: what the anonymous person did is kept, and messages reach the linked account."""

from __future__ import annotations

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from bot.engine import Engine
from bot.messages import InboundMessage, Reply
from bot.outbox import send_to_person
from handlers.accounts import link_codes
from handlers.accounts.registry import add_person
from bot.services import Services
from bot.storage.models import ChannelIdentity, Conversation, Message
from handlers.hearing.models import FormResponse
from integrations.web import create_app
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer
from tests.conftest import send


def test_linking_keeps_the_conversation_and_hearing_draft(services: Services) -> None:
    engine = Engine(services)
    send(engine, "ヒアリング開始", user="anon")
    send(engine, "株式会社連携前", user="anon")
    with services.db.session() as session:
        person = add_person(session, "applicant", "窓口 花子")
        code = link_codes.issue(session, "link", hours=1, person_id=person.id)
        person_id = person.id
    asked = send(engine, code, user="anon")[0]  # the draft moves to 窓口 花子: the account's owner says yes first
    assert "窓口 花子様のアカウントに連携します" in asked.text
    assert "窓口 花子様のアカウントとして連携しました" in engine.handle(InboundMessage(
        channel="web", external_user_id="anon", choice=asked.options[0].value))[0].text
    assert "窓口 花子様（役割：企業・申請者、連携済み）" in send(engine, "/whoami", user="anon")[0].text
    with services.db.session() as session:
        draft = session.execute(select(FormResponse)).scalar_one()
        assert draft.person_id == person_id and draft.answers == {"company_name": "株式会社連携前"}
        conversation = session.execute(select(Conversation).where(Conversation.channel == "web")).scalar_one()
        assert conversation.person_id == person_id
    replies = send(engine, "ヒアリング開始", user="anon")
    assert "前回の続き（2/33）" in replies[0].text

    # A second web account of the same person: one thread, the earlier messages moved into it.
    with services.db.session() as session:
        second_code = link_codes.issue(session, "link", hours=1, person_id=person_id)
        earlier = session.execute(select(Message.id)).scalars().all()
    send(engine, "こんにちは", user="new-phone")
    assert "連携しました" in send(engine, second_code, user="new-phone")[0].text
    with services.db.session() as session:
        conversations = session.execute(select(Conversation).where(Conversation.person_id == person_id)).scalars().all()
        assert len(conversations) == 1
        moved = session.execute(select(Message.conversation_id).where(Message.id.in_(earlier))).scalars().all()
        assert set(moved) == {conversations[0].id}
        identities = session.execute(select(ChannelIdentity).where(ChannelIdentity.person_id == person_id)).scalars()
        assert {i.external_user_id for i in identities} == {"anon", "new-phone"}


def test_web_user_picks_up_pending_messages_once(sqlite_services: Services) -> None:
    engine = Engine(sqlite_services)
    send(engine, "メニュー", user="web-sme")
    with sqlite_services.db.session() as session:
        person_id = session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "web-sme")).scalar_one()
        send_to_person(session, person_id, [Reply(text="本日の訪問を確認してください")])
    sqlite_services.settings.staff.api_token = SecretStr(CHAT_TOKEN)
    with LiveServer(create_app(sqlite_services)) as server:
        pending = f"{server.url}/api/chat/pending"
        first = httpx.post(pending, json={"user_id": "web-sme"}, headers=CHAT_HEADERS).json()
        again = httpx.post(pending, json={"user_id": "web-sme"}, headers=CHAT_HEADERS).json()
        bad = httpx.post(pending, json={"user_id": "a b"}, headers=CHAT_HEADERS)
    assert [r["text"] for r in first["replies"]] == ["本日の訪問を確認してください"]
    assert again["replies"] == []
    assert bad.status_code == 422
