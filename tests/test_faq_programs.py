"""FAQ entries staff publish belong to a program (issue 22): the ticket's, or one chosen in the console from the
member's own programs; only an admin may share one with every program. An entry published in A never answers
at /p/B/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from bot.storage.models import FaqCandidate
from handlers.escalation import tickets
from handlers.escalation.models import StaffAccount, Ticket
from handlers.escalation.staff import create as create_staff
from integrations.cli_root import app as cli_app
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings
from tests.test_staff_console import PASSWORD, csrf_of

A, B = "expert-dispatch", "regional-dx"  # the sample programs; A is the default
QUESTION = "事務所に駐車場はありますか"
ANSWER = "事務所の駐車場は2台分あり、予約なしで使えます。"
OTHER = "説明会の録画は見られますか"
OTHER_ANSWER = "説明会の録画は事業のホームページで公開しています。"


def ask(services: Services, program: str, text: str, user: str) -> str:
    replies = Engine(services).handle(InboundMessage(channel="web", program=program, external_user_id=user, text=text))
    return replies[0].text


def candidate_from_ticket(services: Services, program: str, question: str, answer: str, staff: str) -> int:
    engine = Engine(services)
    for text in ("担当者と話したい", question):
        engine.handle(InboundMessage(channel="web", program=program, external_user_id=f"asker-{program}", text=text))
    with services.db.session() as session:
        ticket = session.execute(select(Ticket).where(Ticket.question == question)).scalar_one()
        member = session.execute(select(StaffAccount).where(StaffAccount.username == staff)).scalar_one()
        tickets.staff_reply(session, ticket, member, answer, via="console")
        candidate = tickets.make_faq_candidate(session, ticket, member)
        assert candidate.program == program  # the ticket's program
        return candidate.id


@pytest.fixture
def console(sample_kb_services: Services) -> Iterator[tuple[Services, str]]:
    sample_kb_services.settings.staff.cookie_secure = False
    with sample_kb_services.db.session() as session:
        create_staff(session, "a-staff", "A担当", PASSWORD).programs = [A]
        create_staff(session, "boss", "管理者", PASSWORD, role="admin")
    with LiveServer(create_app(sample_kb_services)) as server:
        yield sample_kb_services, server.url


def publish(url: str, username: str, candidate: int, program: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=120) as client:
        login = client.post("/staff/login", data={"username": username, "password": PASSWORD,
                                                  "csrf": csrf_of(client.get("/staff/login").text)})
        assert login.status_code == 303
        page = client.get("/staff/faq").text
        return client.post(f"/staff/faq/{candidate}/publish", data={"csrf": csrf_of(page), "program": program})


def test_an_faq_published_in_a_does_not_answer_at_p_b(console: tuple[Services, str]) -> None:
    services, url = console
    assert ANSWER not in ask(services, A, QUESTION, "before")  # no source says it yet
    candidate = candidate_from_ticket(services, A, QUESTION, ANSWER, "a-staff")
    # a member of A cannot move it to B, nor share it with every program
    assert publish(url, "a-staff", candidate, B).status_code == 403
    assert publish(url, "a-staff", candidate, "*").status_code == 403
    assert publish(url, "a-staff", candidate, A).status_code in (200, 303)
    with services.db.session() as session:
        stored = session.get(FaqCandidate, candidate)
        assert (stored.status, stored.program, stored.shared) == ("published", A, False)
    assert (services.settings.data_dir / "faq" / A / "published.yaml").exists()
    assert ANSWER in ask(services, A, QUESTION, "at-a")
    assert ANSWER not in ask(services, B, QUESTION, "at-b")


def test_an_admin_may_share_an_faq_with_every_program(console: tuple[Services, str]) -> None:
    services, url = console
    candidate = candidate_from_ticket(services, B, OTHER, OTHER_ANSWER, "boss")
    assert publish(url, "boss", candidate, "*").status_code in (200, 303)
    with services.db.session() as session:
        assert session.get(FaqCandidate, candidate).shared is True
    for program in (A, B):
        assert OTHER_ANSWER in ask(services, program, OTHER, f"shared-{program}")
    with httpx.Client(base_url=url, timeout=60) as client:  # the console shows where it answers
        client.post("/staff/login", data={"username": "boss", "password": PASSWORD,
                                          "csrf": csrf_of(client.get("/staff/login").text)})
        assert "回答する事業：全事業共通" in client.get("/staff/faq").text


def test_the_faq_program_migration_gives_candidates_their_tickets_program(database_url: str | None,
                                                                        tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from bot.storage.db import Database

    db = Database(database_url or f"sqlite:///{tmp_path / 'm.sqlite3'}")
    cfg = db.alembic_config()
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0008")
        connection.execute(text("INSERT INTO people (id, role, locale, created_at) VALUES (1, 'applicant', 'ja', "
                                "CURRENT_TIMESTAMP)"))
        for ticket, program in ((1, "'regional-dx'"), (2, "NULL")):
            connection.execute(text(
                "INSERT INTO tickets (id, person_id, channel, reason, question, role, status, transcript, sources, "
                f"overdue, created_at, program) VALUES ({ticket}, 1, 'web', 'asked_human', 'q', 'applicant', 'open', "
                f"'[]', '[]', false, CURRENT_TIMESTAMP, {program})"))
        for candidate, ticket in ((1, "1"), (2, "2"), (3, "NULL")):
            connection.execute(text(
                "INSERT INTO faq_candidates (id, ticket_id, question, answer, status, created_at) VALUES "
                f"({candidate}, {ticket}, 'q', 'a', 'pending', CURRENT_TIMESTAMP)"))
    db.migrate()
    with db.engine.begin() as connection:
        rows = connection.execute(text("SELECT id, program, shared FROM faq_candidates ORDER BY id")).all()
    assert [(r[0], r[1], bool(r[2])) for r in rows] == [(1, "regional-dx", False), (2, None, False), (3, None, False)]
    db.dispose()


def test_the_cli_review_takes_a_program_and_publishes_where_it_is_told(tmp_path: Path, database_url: str | None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`knowledge faq review` went through every program's candidates and published each where its ticket
    was: the operator could neither review one program's nor choose where an entry goes. Now `--program`
    picks the candidates, and an edited entry may go to another program or be shared with every program."""
    if database_url:
        monkeypatch.setenv("MADOGUCHI_DATABASE__URL", database_url)
    services = Services.create(make_settings(tmp_path, database_url))
    with services.db.session() as session:
        rows = [FaqCandidate(question=f"{name}の質問ですか", answer=f"{name}の回答です。", program=program)
                for name, program in (("総合窓口", None), ("派遣", A), ("DX", B))]
        session.add_all(rows)
        session.flush()
        general, of_a, of_b = (row.id for row in rows)

    def review(*args: str, typed: str = "") -> str:
        result = CliRunner().invoke(cli_app, ["knowledge", "faq", "review", *args], input=typed)
        assert result.exit_code == 0, result.output
        return result.output

    def published(program: str | None) -> list[str]:
        path = services.settings.data_dir / "faq" / (program or "") / "published.yaml"
        return [entry["question"] for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["faq"]]

    assert f"候補 #{of_b}" in review("--program", B, "--publish-all")
    assert published(B) == ["DXの質問ですか"]
    # A's candidates include the one from the general entry (the default program's); one is shared, one moved
    shown = review("--program", A, typed="e\n\n\n*\ne\n\n\n" + B + "\n")
    assert f"候補 #{general}" in shown and f"候補 #{of_a}" in shown and f"候補 #{of_b}" not in shown
    assert published(None) == ["総合窓口の質問ですか"] and published(B) == ["DXの質問ですか", "派遣の質問ですか"]
    with services.db.session() as session:
        stored = {c.id: (c.status, c.program, c.shared) for c in session.execute(select(FaqCandidate)).scalars()}
    assert stored == {general: ("published", None, True), of_a: ("published", B, False), of_b: ("published", B, False)}
    refused = CliRunner().invoke(cli_app, ["knowledge", "faq", "review", "--program", "nosuch"])
    assert refused.exit_code == 2 and "事業 nosuch はありません" in refused.output
    services.close()


def test_the_cli_review_shows_a_candidates_text_literally(tmp_path: Path, database_url: str | None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate's question is a user's own text: printed through rich's markup, 「[red]至急[/red]」 or
    「[b]」 lost its brackets (or broke the line), so the operator reviewed something other than what was
    asked. Now the text is escaped and shown as written."""
    if database_url:
        monkeypatch.setenv("MADOGUCHI_DATABASE__URL", database_url)
    services = Services.create(make_settings(tmp_path, database_url))
    question, answer = "[red]至急[/red] 様式[b]はどこ？", "様式[2]を使います。"
    with services.db.session() as session:
        session.add(FaqCandidate(question=question, answer=answer, program=None))
    result = CliRunner().invoke(cli_app, ["knowledge", "faq", "review"], input="s\n")
    assert result.exit_code == 0, result.output
    assert question in result.output and answer in result.output
    services.close()
