"""Messages go out through the program's own LINE account (issue 22), checked against a fake LINE API on
loopback by the channel access token each push carries: a staff answer from the console or Slack, and a
message tied to no conversation (a visit notice) go out from the account of the person's program, never the
default program's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.engine import Engine
from bot.messages import Reply
from bot.outbox import program_on, send_to_person
from bot.services import Services
from bot.storage.models import ChannelIdentity, Company, Person
from handlers.escalation.models import Ticket
from handlers.escalation.staff import create as create_staff
from handlers.visits.models import Visit
from handlers.visits.service import sweep_and_notify
from integrations.web import create_app
from tests import fake_platforms as fp
from tests.conftest import LiveServer, eventually, make_settings
from tests.test_line_liff_richmenu import write_programs
from tests.test_staff_console import PASSWORD, csrf_of
from tests.conftest import send

STAFF_CHANNEL = "C0STAFF"


@dataclass
class Rig:
    services: Services
    platform: fp.FakePlatforms
    url: str

    def say(self, user: str, program: str | None, text: str) -> list[Reply]:
        return send(Engine(self.services), text, user=user, channel="line", program=program)

    def pushes_to(self, user: str, count: int = 1) -> list[fp.Call]:
        def pushed() -> list[fp.Call] | None:
            found = [c for c in self.platform.of("line", "push") if c.body.get("to") == user]
            return found if len(found) >= count else None

        return eventually(pushed, failure=lambda: f"no push to {user}: {self.platform.of('line')}")


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    """Programs alpha (the default) and beta, each with its own LINE account (token-alpha, token-beta)."""
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(tmp_path, programs__dir=write_programs(tmp_path / "programs", monkeypatch),
                                 line__api_url=f"{fake.url}/line", line__data_api_url=f"{fake.url}/line",
                                 staff__cookie_secure=False, slack__bot_token="xoxb-test",
                                 slack__signing_secret=fp.SLACK_SECRET, slack__api_url=f"{fake.url}/slack/api/",
                                 slack__staff_channel=STAFF_CHANNEL)
        services = Services.create(settings)
        with services.db.session() as session:
            create_staff(session, "beta-staff", "β担当", PASSWORD, slack_user_id="UBSTAFF").programs = ["beta"]
        with LiveServer(create_app(services)) as server:
            yield Rig(services, platform, server.url)
        services.close()


def open_ticket(rig: Rig, user: str, question: str) -> int:
    rig.say(user, "beta", "担当者と話したい")
    rig.say(user, "beta", question)
    with rig.services.db.session() as session:
        ticket = session.execute(select(Ticket).where(Ticket.question == question)).scalar_one()
        assert ticket.program == "beta"
        return ticket.id


def test_a_console_answer_returns_through_the_programs_own_line_account(rig: Rig) -> None:
    ticket = open_ticket(rig, "U-console", "ベータの締切を教えてください")
    with httpx.Client(base_url=rig.url, timeout=30) as client:
        login = client.post("/staff/login", data={"username": "beta-staff", "password": PASSWORD,
                                                  "csrf": csrf_of(client.get("/staff/login").text)})
        assert login.status_code == 303
        answer = client.post(f"/staff/tickets/{ticket}/reply",
                             data={"text": "4月28日までです", "csrf": csrf_of(client.get("/staff").text)})
        assert answer.status_code in (200, 303), answer.text
    push = rig.pushes_to("U-console")[0]
    assert push.authorization == "Bearer token-beta"  # beta's channel access token, not the default's
    assert "4月28日までです" in push.body["messages"][0]["text"]


def test_a_slack_answer_returns_through_the_programs_own_line_account(rig: Rig) -> None:
    ticket = open_ticket(rig, "U-slack", "ベータの審査について質問です")
    def posted() -> str | None:
        with rig.services.db.session() as session:
            return session.get(Ticket, ticket).slack_ts

    thread = eventually(posted, failure="the ticket was not posted to the staff channel")
    body = fp.slack_message_event("書面審査のあと面接です", user="UBSTAFF", event_id="EvAnswer1", channel=STAFF_CHANNEL,
                                  thread_ts=thread, channel_type="channel")
    posted = httpx.post(f"{rig.url}/slack/events", content=body.encode(), timeout=30,
                        headers=fp.slack_headers(body) | {"Content-Type": "application/json"})
    assert posted.status_code == 200
    push = rig.pushes_to("U-slack")[0]
    assert push.authorization == "Bearer token-beta"
    assert "書面審査のあと面接です" in push.body["messages"][0]["text"]


def test_a_visit_notice_goes_out_through_the_account_of_the_visits_program(rig: Rig) -> None:
    """The nightly sweep tells the expert on LINE; the expert wrote to beta's account, the visit is beta's."""
    rig.say("U-expert", "beta", "ヘルプ")
    with rig.services.db.session() as session:
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.external_user_id == "U-expert")).scalar_one()
        identity.verified = True
        expert = session.get(Person, identity.person_id)
        expert.role, expert.display_name = "expert", "専門家"
        company = Company(name="株式会社ベータ")
        session.add(company)
        session.flush()
        session.add(Visit(expert_person_id=expert.id, company_id=company.id, program="beta",
                          planned_date=date(2026, 11, 2), flags=[]))
        session.flush()
        assert [v.program for v in sweep_and_notify(session, date(2026, 11, 2))] == ["beta"]
    push = rig.pushes_to("U-expert")[0]
    assert push.authorization == "Bearer token-beta"
    assert "株式会社ベータ" in push.body["messages"][0]["text"]


def test_a_message_tied_to_no_conversation_takes_the_persons_program(rig: Rig) -> None:
    rig.say("U-both", "alpha", "ヘルプ")
    rig.say("U-both", "beta", "ヘルプ")  # their latest conversation is on beta's account
    with rig.services.db.session() as session:
        person = session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "U-both")).scalar_one()
        assert program_on(session, person, "line") == "beta"
        assert program_on(session, person, "line", "alpha") == "alpha"  # a visit of alpha: alpha's account
        assert program_on(session, person, "line", "gamma") == "beta"  # never an account they did not write to
        send_to_person(session, person, [Reply(text="事務局からのお知らせです")])
    push = rig.pushes_to("U-both")[0]
    assert push.authorization == "Bearer token-beta"
