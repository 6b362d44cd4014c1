"""Staff per program, tested as authorization: a staff member of program A can never read or act on
program B's tickets, hearing responses or visits, through the console, the staff API or Slack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.security import api_tokens
from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from handlers.escalation.staff import create as create_staff
from bot.storage.models import Company, FaqCandidate, Person, utcnow
from handlers.escalation.models import StaffAccount, Ticket, TicketMessage
from handlers.hearing.models import FormResponse
from handlers.visits.models import Visit
from integrations.web import create_app
from tests import fake_platforms as fp
from tests.conftest import LiveServer, eventually, make_settings
from tests.test_staff_console import PASSWORD, csrf_of

A, B = "expert-dispatch", "regional-dx"  # the sample programs; A is the default
STAFF_CHANNEL = "C0STAFF"


@dataclass
class World:
    services: Services
    url: str
    platform: fp.FakePlatforms
    tickets: dict[str, int]
    hearings: dict[str, int]
    visits: dict[str, int]
    tokens: dict[str, str]


def open_ticket(services: Services, program: str, user: str, question: str) -> int:
    engine = Engine(services)
    for text in ("担当者と話したい", question):
        engine.handle(InboundMessage(channel="web", program=program, external_user_id=user, text=text))
    with services.db.session() as session:
        ticket = session.execute(select(Ticket).where(Ticket.question == question)).scalar_one()
        assert ticket.program == program
        return ticket.id


@pytest.fixture
def world(tmp_path: Path, database_url: str | None) -> Iterator[World]:
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(tmp_path, database_url, staff__cookie_secure=False, slack__bot_token="xoxb-test",
                                 slack__signing_secret=fp.SLACK_SECRET, slack__api_url=f"{fake.url}/slack/api/",
                                 slack__staff_channel=STAFF_CHANNEL)
        services = Services.create(settings)
        tickets = {p: open_ticket(services, p, f"user-{p}", f"{p} の相談です") for p in (A, B)}
        hearings, visits, tokens = {}, {}, {}
        with services.db.session() as session:
            create_staff(session, "a-staff", "A担当", PASSWORD, slack_user_id="UASTAFF").programs = [A]
            create_staff(session, "b-staff", "B担当", PASSWORD, slack_user_id="UBSTAFF").programs = [B]
            create_staff(session, "boss", "管理者", PASSWORD, role="admin")
            company = Company(name="株式会社テスト")
            expert = Person(role="expert", display_name="専門家")
            session.add_all([company, expert])
            session.flush()
            for program in (A, B):
                response = FormResponse(form_id="dx-platform", form_version=1, person_id=expert.id, channel="web",
                                        program=program, status="submitted", answers={"company_name": f"{program}社"},
                                        labels={}, state={}, submitted_at=utcnow())
                visit = Visit(expert_person_id=expert.id, company_id=company.id, program=program,
                              planned_date=date(2026, 11, 2))
                session.add_all([response, visit])
                session.flush()
                hearings[program], visits[program] = response.id, visit.id
            session.add(FaqCandidate(ticket_id=tickets[B], question="Bの候補質問", answer="Bの候補回答", program=B))
            for name, programs in (("a", [A]), ("all", ["*"])):
                tokens[name] = api_tokens.create(session, f"token-{name}", ["*"], programs=programs)[1]
        with LiveServer(create_app(services)) as server:
            yield World(services, server.url, platform, tickets, hearings, visits, tokens)
        services.close()


@contextmanager
def staff_client(world: World, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.url, timeout=30) as client:
        token = csrf_of(client.get("/staff/login").text)
        answer = client.post("/staff/login", data={"username": username, "password": PASSWORD, "csrf": token})
        assert answer.status_code == 303, answer.text
        yield client


def test_console_staff_of_a_cannot_see_or_act_on_b(world: World) -> None:
    with staff_client(world, "a-staff") as client:
        queue = client.get("/staff?filter=all").text
        assert "expert-dispatch の相談です" in queue and "regional-dx の相談です" not in queue
        b_ticket = world.tickets[B]
        page = client.get(f"/staff/tickets/{b_ticket}")
        assert page.status_code == 404 and "regional-dx の相談です" not in page.text
        csrf = csrf_of(client.get("/staff").text)
        for action in ("claim", "reply", "resolve", "close", "faq"):
            answer = client.post(f"/staff/tickets/{b_ticket}/{action}", data={"csrf": csrf, "text": "Aから"})
            assert answer.status_code == 404, action
        confirmed = client.post(f"/staff/tickets/{b_ticket}/close", data={"csrf": csrf, "confirm": "yes"})
        assert confirmed.status_code == 404
        assert client.get(f"/staff/hearings/{world.hearings[B]}").status_code == 404
        assert client.get(f"/staff/visits/{world.visits[B]}").status_code == 404
        assert "regional-dx社" not in client.get("/staff/hearings").text
        # their own program's records are there
        assert client.get(f"/staff/tickets/{world.tickets[A]}").status_code == 200
        assert "expert-dispatch社" in client.get(f"/staff/hearings/{world.hearings[A]}").text
        assert client.get(f"/staff/visits/{world.visits[A]}").status_code == 200
        dashboard = client.get("/staff/dashboard")
        assert dashboard.status_code == 200
        assert "Bの候補質問" not in client.get("/staff/faq").text  # a candidate quotes B's ticket
        candidate = csrf_of(client.get("/staff/faq").text)
        assert client.post("/staff/faq/1/publish", data={"csrf": candidate}).status_code == 404
    with world.services.db.session() as session:
        ticket = session.get(Ticket, world.tickets[B])
        assert ticket.status == "open" and ticket.assignee_id is None
        assert [m.author for m in session.execute(select(TicketMessage).where(
            TicketMessage.ticket_id == ticket.id)).scalars()] == ["user"]
        assert session.execute(select(FaqCandidate.status)).scalar_one() == "pending"


def test_console_staff_of_b_and_admins(world: World) -> None:
    with staff_client(world, "b-staff") as client:
        assert client.get(f"/staff/tickets/{world.tickets[A]}").status_code == 404
        assert client.get(f"/staff/tickets/{world.tickets[B]}").status_code == 200
        assert client.get(f"/staff/hearings/{world.hearings[B]}").status_code == 200
        assert "Bの候補質問" in client.get("/staff/faq").text
    with staff_client(world, "boss") as client:
        for program in (A, B):
            assert client.get(f"/staff/tickets/{world.tickets[program]}").status_code == 200
            assert client.get(f"/staff/visits/{world.visits[program]}").status_code == 200


def test_staff_api_token_of_a_cannot_read_b(world: World) -> None:
    def get(path: str, token: str) -> httpx.Response:
        return httpx.get(f"{world.url}{path}", headers={"Authorization": f"Bearer {world.tokens[token]}"}, timeout=30)

    assert get(f"/api/hearings/{world.hearings[B]}", "a").status_code == 404
    assert get(f"/api/visits/{world.visits[B]}", "a").status_code == 404
    assert get(f"/api/hearings/{world.hearings[A]}", "a").status_code == 200
    assert get(f"/api/visits/{world.visits[A]}", "a").status_code == 200
    listed = get("/api/hearings", "a").json()["items"]
    assert [item["id"] for item in listed] == [world.hearings[A]]
    assert [item["id"] for item in get("/api/visits", "a").json()["items"]] == [world.visits[A]]
    # a token for every program sees both (B has no hearing form of its own, so the form is named)
    assert {item["id"] for item in get("/api/hearings?form=dx-platform", "all").json()["items"]} == set(
        world.hearings.values())
    assert get(f"/api/visits/{world.visits[B]}", "all").status_code == 200


def test_slack_staff_of_a_cannot_claim_answer_or_resolve_b(world: World) -> None:
    b_ticket = world.tickets[B]
    thread = eventually(lambda: slack_ts(world, b_ticket))  # the ticket was posted to the staff channel

    def post(body: str, form: bool) -> httpx.Response:
        kind = "application/x-www-form-urlencoded" if form else "application/json"
        return httpx.post(f"{world.url}/slack/events", content=body.encode(),
                          headers=fp.slack_headers(body) | {"Content-Type": kind}, timeout=30)

    for action in ("ticket_claim", "ticket_resolve"):
        body = fp.slack_button_payload(str(b_ticket), user="UASTAFF", channel=STAFF_CHANNEL, action_id=action,
                                       action_ts=f"{time.time():.6f}")
        assert post(body, form=True).status_code == 200
    reply = fp.slack_message_event("Aの担当者から", user="UASTAFF", event_id="EvThread1", channel=STAFF_CHANNEL,
                                   thread_ts=thread, channel_type="channel")
    assert post(reply, form=False).status_code == 200
    refusals = world.platform.wait_for("slack", 3, "chat.postEphemeral")
    assert all("担当できません" in call.body["text"] for call in refusals)
    with world.services.db.session() as session:
        ticket = session.get(Ticket, b_ticket)
        assert ticket.status == "open" and ticket.assignee_id is None
        assert [m.author for m in session.execute(select(TicketMessage).where(
            TicketMessage.ticket_id == b_ticket)).scalars()] == ["user"]
        staff = session.execute(select(StaffAccount).where(StaffAccount.slack_user_id == "UBSTAFF")).scalar_one()
        assert staff.programs == [B]
    # B's own staff member can claim it
    body = fp.slack_button_payload(str(b_ticket), user="UBSTAFF", channel=STAFF_CHANNEL, action_id="ticket_claim",
                                   action_ts=f"{time.time():.6f}")
    assert post(body, form=True).status_code == 200
    eventually(lambda: status(world, b_ticket) == "claimed")


def slack_ts(world: World, ticket_id: int) -> str | None:
    with world.services.db.session() as session:
        return session.get(Ticket, ticket_id).slack_ts


def status(world: World, ticket_id: int) -> str:
    with world.services.db.session() as session:
        return session.get(Ticket, ticket_id).status


