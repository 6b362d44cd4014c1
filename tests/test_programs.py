"""Several programs in one installation: configuration, entry points, knowledge scoped to the program."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.programs import ProgramError, check_programs, load_programs
from bot.services import Services
from bot.storage.models import Conversation
from integrations.web import create_app
from tests.browser_support import needs_browser
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer, make_settings
from tests.security_helpers import web_visitor

A, B = "expert-dispatch", "regional-dx"  # the two sample programs (sample_programs/)


# ------------------------------------------------------------- configuration
def test_a_single_program_installation_needs_nothing_new(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, knowledge__paths=[tmp_path / "docs"], hearing__form="dx-platform",
                             escalation__contact="事務局 03-0000-0000")
    catalog = load_programs(settings)
    assert [p.id for p in catalog] == ["default"] and catalog.default.contact == "事務局 03-0000-0000"
    assert catalog.source_filter("default") is None  # one program: every source answers


def test_the_shipped_sample_has_two_programs_and_they_check(tmp_path: Path) -> None:
    catalog = load_programs(make_settings(tmp_path))
    assert [p.id for p in catalog] == [A, B] and catalog.default.id == A
    errors, _ = check_programs(catalog, ["dx-platform"])
    assert errors == []
    assert catalog.named_in("地域DXの応募はいつまで？").id == B


@pytest.mark.parametrize(("text", "message"), [
    ("id: Bad_Id\nname: x\n", "id"),
    ("id: ok\nname: x\nhours: {open: '25:00'}\n", "hours.open"),
    ("id: ok\nname: x\nunknown_key: 1\n", "unknown_key"),
    ("id: ok\nname: x\nrich_menu: [{label: a, text: b, liff: true}]\n", "rich_menu"),
])
def test_a_broken_program_file_names_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    folder = tmp_path / "programs"
    folder.mkdir()
    (folder / "broken.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ProgramError, match=message) as error:
        load_programs(make_settings(tmp_path, programs__dir=folder))
    assert "broken.yaml" in str(error.value)


def test_exactly_one_default_program(tmp_path: Path) -> None:
    folder = tmp_path / "programs"
    folder.mkdir()
    for pid in ("one", "two"):
        (folder / f"{pid}.yaml").write_text(f"id: {pid}\nname: {pid}\n", encoding="utf-8")
    with pytest.raises(ProgramError, match="default"):
        load_programs(make_settings(tmp_path, programs__dir=folder))


def test_programs_check_command_reports_a_missing_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from integrations.cli_root import app

    folder = tmp_path / "programs"
    folder.mkdir()
    (folder / "x.yaml").write_text("id: xx\nname: X\nhearing_form: no-such-form\n", encoding="utf-8")
    monkeypatch.setenv("MADOGUCHI_PROGRAMS__DIR", str(folder))
    result = CliRunner().invoke(app, ["programs", "check"])
    assert result.exit_code == 1 and "no-such-form" in result.output
    listed = CliRunner().invoke(app, ["programs", "list", "--json"])
    assert listed.exit_code == 0 and '"xx"' in listed.output


def test_programs_check_warns_when_a_program_and_its_documents_tell_two_fiscal_years(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot declines other years by the documents' edition; a program file left at last year's fiscal_year
    (or metadata left at last year's) went unnoticed. `programs check` names both; the shipped sample agrees."""
    from typer.testing import CliRunner

    from integrations.cli_root import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# 案内\n\n本文です。\n", encoding="utf-8")
    (docs / "editions.meta.yaml").write_text("editions:\n  - program: 事業X\n    fiscal_year: 令和8年度\n"
                                              "    documents: [guide.md]\n", encoding="utf-8")
    folder = tmp_path / "programs"
    folder.mkdir()
    (folder / "x.yaml").write_text(f"id: xx\nname: X\nfiscal_year: 2025\nknowledge: {{sources: ['{docs}']}}\n",
                                   encoding="utf-8")
    monkeypatch.setenv("MADOGUCHI_PROGRAMS__DIR", str(folder))
    result = CliRunner().invoke(app, ["programs", "check"])
    assert result.exit_code == 0, result.output
    said = result.output.replace("\n", "")  # the terminal's width wraps the line
    assert "fiscal_year 2025（令和7年度）" in said and "「guide.md」の版（令和8年度、editions.meta.yaml）" in said
    (folder / "x.yaml").write_text(f"id: xx\nname: X\nfiscal_year: 2026\nknowledge: {{sources: ['{docs}']}}\n",
                                   encoding="utf-8")
    assert "fiscal_year" not in CliRunner().invoke(app, ["programs", "check"]).output
    monkeypatch.delenv("MADOGUCHI_PROGRAMS__DIR")
    shipped = CliRunner().invoke(app, ["programs", "check"])
    assert shipped.exit_code == 0 and "fiscal_year" not in shipped.output, shipped.output


# ------------------------------------------------ knowledge scoped to the program
@pytest.fixture
def web(sample_kb_services: Services) -> Iterator[httpx.Client]:
    """The chat API as an integration uses it (a body user_id with a `chat` token), so one test can be several users."""
    from pydantic import SecretStr

    sample_kb_services.settings.staff.api_token = SecretStr(CHAT_TOKEN)
    with LiveServer(create_app(sample_kb_services)) as server, httpx.Client(base_url=server.url, timeout=60,
                                                                            headers=CHAT_HEADERS) as client:
        yield client


def test_the_page_sends_its_program_from_a_session_cookie(web: httpx.Client) -> None:
    """The browser's way: no user id anywhere, the program from /p/<id>/, the visitor from the session cookie."""
    with web_visitor(str(web.base_url), timeout=60) as browser:
        at_b = browser.post("/api/chat", json={"text": ONLY_B, "program": B})
        assert at_b.status_code == 200 and "4月28日" in at_b.json()["replies"][0]["text"]
        at_a = browser.post("/api/chat", json={"text": ONLY_B, "program": A})
        assert "4月28日" not in at_a.json()["replies"][0]["text"]


def ask(client: httpx.Client, text: str, program: str | None, user: str) -> dict:  # type: ignore[type-arg]
    body = {"user_id": user, "text": text} | ({"program": program} if program else {})
    answer = client.post("/api/chat", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["replies"][0]


ONLY_B = "応募の受付期間はいつまでですか"  # only the regional-dx call states it (4月28日)
ONLY_A = "専門家の謝金は1時間いくらですか"  # only the expert-dispatch sample states it (5,280円)


def test_a_question_at_p_a_is_answered_from_a_sources_only(web: httpx.Client) -> None:
    at_a = ask(web, ONLY_B, A, "scope-1")
    assert "4月28日" not in at_a["text"]
    assert at_a["outcome"] in ("unsure", "outside")  # not answered (and the offer of a person)
    at_b = ask(web, ONLY_B, B, "scope-1")
    assert "4月28日" in at_b["text"], at_b["text"]
    assert ask(web, ONLY_A, A, "scope-1")["text"].count("5,280") >= 1
    assert "5,280" not in ask(web, ONLY_A, B, "scope-1")["text"]


def test_at_the_general_entry_a_question_naming_a_program_is_asked_of_its_sources(web: httpx.Client) -> None:
    """At `/` a question that names a program (its name, short name or alias) is that program's question: one
    naming the expert-dispatch program is not answered with the regional-DX call's deadline."""
    named_a = ask(web, "専門家派遣の" + ONLY_B, None, "scope-3")
    assert "4月28日" not in named_a["text"], named_a["text"]
    named_b = ask(web, "地域DXの" + ONLY_B, None, "scope-3")
    assert "4月28日" in named_b["text"], named_b["text"]
    assert named_b["citations"] and all("regional-dx" in c["url"] for c in named_b["citations"])


def test_an_unsure_reply_at_the_general_entry_names_the_programs_and_links_their_pages(
        sample_kb_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not sure at `/`: the reply says naming the program asks its documents alone, and lists the programs; the
    web chat also links each program's page. Inside a program's window there is nothing to narrow."""
    import knowledge.learned as learned
    from dataclasses import replace

    from knowledge.model import load_model

    shipped = load_model()
    monkeypatch.setattr(learned, "load_model",
                        lambda: replace(shipped, gate=replace(shipped.gate, threshold=2.0, general_threshold=None)))
    engine = Engine(sample_kb_services)
    question = "旅費に含まれるのは何ですか"
    web_reply = engine.handle(InboundMessage(channel="web", external_user_id="n-1", text=question))[0]
    assert web_reply.meta["outcome"] == "unsure", web_reply.text
    assert "事業名を添えてお尋ねいただくと" in web_reply.text
    assert "専門家派遣" in web_reply.text and "地域DX" in web_reply.text
    assert [link.url for link in web_reply.links] == [f"/p/{A}/", f"/p/{B}/"]
    line_reply = engine.handle(InboundMessage(channel="line", external_user_id="n-2", text=question))[0]
    assert "事業名を添えてお尋ねいただくと" in line_reply.text and not line_reply.links
    inside = engine.handle(InboundMessage(channel="web", program=A, external_user_id="n-3", text=question))[0]
    assert inside.meta["outcome"] == "unsure" and "事業名を添えて" not in inside.text and not inside.links


def test_a_person_asked_for_after_a_question_naming_a_program_at_the_general_entry_is_that_programs_ticket(
        sample_kb_services: Services) -> None:
    """At `/` the question named the regional-DX program and was answered from its documents: the ticket that
    follows is that program's (its staff see it), not the default program's; one that named none stays the
    default's."""
    from handlers.escalation.models import Ticket

    engine = Engine(sample_kb_services)
    for user, question in (("t-named", "地域DXの" + ONLY_B), ("t-unnamed", "交通費ってどうなってる？")):
        engine.handle(InboundMessage(channel="web", external_user_id=user, text=question))
        engine.handle(InboundMessage(channel="web", external_user_id=user, text="担当者と話したい"))
    with sample_kb_services.db.session() as session:
        programs = {t.question: t.program for t in session.execute(select(Ticket)).scalars()}
    assert programs == {"地域DXの" + ONLY_B: B, "交通費ってどうなってる？": A}


@pytest.fixture
def unsure_at_the_general_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit gate never sure at a general entry point, as shipped in a program's window."""
    import knowledge.learned as learned
    from dataclasses import replace

    from knowledge.model import load_model

    shipped = load_model()
    monkeypatch.setattr(learned, "load_model",
                        lambda: replace(shipped, gate=replace(shipped.gate, general_threshold=2.0)))


def test_on_line_a_programs_button_under_an_unsure_answer_at_the_general_entry_asks_the_question_there(
        sample_kb_services: Services, unsure_at_the_general_entry: None) -> None:
    """A general LINE (or Telegram, Slack) bot cannot link a program's page: under an unsure answer it offers a
    button per program, and pressing one asks the same question of that program's documents. A person asked
    for then opens that program's ticket with the question; a button pressed after a later answer asks nothing."""
    from handlers.escalation.models import Ticket

    engine = Engine(sample_kb_services)

    def send(text: str | None = None, choice: str | None = None, user: str = "U-general") -> Any:
        return engine.handle(InboundMessage(channel="line", external_user_id=user, text=text, choice=choice))[0]

    unsure = send(ONLY_B)
    assert unsure.meta["outcome"] == "unsure", unsure.text
    # A button no program has (a hostile or outdated client) is refused, and is no answer: the real ones still work.
    assert send(choice="faq:ask:<script>").text.startswith("その選択肢は現在ご利用いただけません")
    buttons = {o.value: o.label for o in unsure.options}
    assert buttons == {f"faq:ask:{A}": "「専門家派遣」で調べる", f"faq:ask:{B}": "「地域DX伴走支援」で調べる",
                       "contact:human": "担当者に問い合わせる"}, buttons
    first = send(choice=f"faq:ask:{A}")  # the wrong program first: not there, and no buttons again
    assert first.meta["program"] == A and "4月28日" not in first.text and first.meta["question"] == ONLY_B
    assert [o.value for o in first.options] == ["contact:human"]
    there = send(choice=f"faq:ask:{B}")  # the other button of the same answer still asks the same question
    assert there.meta["outcome"] == "answered" and "4月28日" in there.text, there.text
    assert there.meta["program"] == B and there.meta["question"] == ONLY_B
    assert there.meta["citations"] and all("regional-dx" in c["source"] for c in there.meta["citations"])
    send("担当者と話したい")
    with sample_kb_services.db.session() as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert (ticket.question, ticket.program) == (ONLY_B, B)
    # The button of an old answer, pressed after the bot answered another question, does not ask the old one.
    assert send(ONLY_B, user="U-later").meta["outcome"] == "unsure"
    assert send("専門家派遣の謝金は1時間いくらですか", user="U-later").meta["outcome"] == "answered"
    late = send(choice=f"faq:ask:{B}", user="U-later")
    assert late.text == "「地域DX伴走支援」についてのご質問を、もう一度入力してください。", late.text
    assert send(choice="faq:ask:no-such-program", user="U-later").text.startswith("その選択肢は現在ご利用いただけません")


def test_a_question_declined_again_after_a_programs_button_is_reviewed_with_its_own_words(
        sample_kb_services: Services, unsure_at_the_general_entry: None) -> None:
    """The staff inbox lists the questions the bot declined by the message each answer replied to. An answer to
    a program's button replies to the button press, which holds no question: the question declined in that
    program's documents too was listed by the button's text, or not at all. It is listed by its own words."""
    from integrations.staff_inbox import questions_to_review

    engine = Engine(sample_kb_services)
    engine.handle(InboundMessage(channel="line", external_user_id="U-review", text=ONLY_B))
    again = engine.handle(InboundMessage(channel="line", external_user_id="U-review", choice=f"faq:ask:{A}",
                                         text="「専門家派遣」で調べる"))[0]
    assert again.meta["confident"] is False and again.meta["question"] == ONLY_B
    with sample_kb_services.db.session() as session:
        review = questions_to_review(session)
    assert [(r["question"], r["why"]) for r in review] == [(ONLY_B, "回答を控えた")], review


@pytest.mark.parametrize("channel", ["line", "telegram"])
def test_the_program_buttons_through_the_platforms_real_webhooks(sample_kb_template: Path, tmp_path: Path,
                                                                  unsure_at_the_general_entry: None,
                                                                  channel: str) -> None:
    """The same on the wire: the platform's signed webhook, the buttons as LINE quick-reply postbacks or
    Telegram inline buttons (64-byte callback data, resolved against the stored reply), the press sent back."""
    import shutil

    from tests import fake_platforms as fp

    shutil.copytree(sample_kb_template, tmp_path / "samplekb")
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        services = Services.create(make_settings(
            tmp_path, data_dir=tmp_path / "samplekb", line__channel_secret=fp.LINE_SECRET,
            line__channel_access_token="line-token", line__api_url=f"{fake.url}/line",
            telegram__bot_token=fp.TELEGRAM_TOKEN, telegram__secret_token=fp.TELEGRAM_SECRET,
            telegram__api_url=f"{fake.url}/telegram/bot"))
        method = {"line": "reply", "telegram": "sendMessage"}[channel]
        try:
            with LiveServer(create_app(services)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
                def post(number: int, text: str | None = None, pressed: str | None = None) -> dict[str, Any]:
                    if channel == "line":
                        body = fp.line_body(fp.line_text(text) if text else fp.line_postback(pressed or ""),
                                            event_id=f"01HEVENTPB{number}", reply_token=f"reply-{number}")
                        headers = fp.line_headers(body)
                    else:
                        update = fp.telegram_text(text, number) if text else fp.telegram_button(pressed or "", number)
                        body = json.dumps(update, ensure_ascii=False)
                        headers = {"Content-Type": "application/json", fp.TELEGRAM_SECRET_HEADER: fp.TELEGRAM_SECRET}
                    assert client.post(f"/{channel}/webhook", content=body.encode(), headers=headers).status_code == 200
                    return platform.wait_for(channel, number, method)[number - 1].body  # type: ignore[no-any-return]

                unsure = post(1, text=ONLY_B)
                if channel == "line":
                    buttons = {i["action"]["label"]: i["action"]["data"]
                               for i in unsure["messages"][-1]["quickReply"]["items"]}
                else:
                    buttons = {row[0]["text"]: row[0]["callback_data"] for row in unsure["reply_markup"]["inline_keyboard"]}
                if channel == "line":
                    pressed = buttons["「地域DX伴走支援」で調べる"]
                    assert pressed == f"faq:ask:{B}"
                else:  # the regional-DX program is not on Telegram (its YAML's channels): its button is not either
                    assert "「地域DX伴走支援」で調べる" not in buttons, buttons
                    pressed = buttons["「専門家派遣」で調べる"]
                    assert len(pressed.encode()) <= 64
                there = post(2, pressed=pressed)
                said = "\n".join(m["text"] for m in there["messages"]) if channel == "line" else there["text"]
                assert "事業名を添えてお尋ねいただくと" not in said, said  # asked in a program: nothing to narrow
                if channel == "line":
                    assert "4月28日" in said and "関係しそうな記載" not in said, said
                else:  # the expert-dispatch documents do not state the regional-DX call's period
                    assert "4月28日" not in said, said
        finally:
            services.close()


def test_the_web_and_a_programs_window_get_no_program_buttons(sample_kb_services: Services,
                                                              unsure_at_the_general_entry: None) -> None:
    """The web chat links the program pages instead; inside a program there is nothing to narrow."""
    engine = Engine(sample_kb_services)
    web = engine.handle(InboundMessage(channel="web", external_user_id="w-1", text=ONLY_B))[0]
    assert web.meta["outcome"] == "unsure" and [o.value for o in web.options] == ["contact:human"]
    inside = engine.handle(InboundMessage(channel="line", program=A, external_user_id="U-a", text=ONLY_B))[0]
    assert [o.value for o in inside.options] == ["contact:human"], inside.options


def test_citations_at_a_program_page_name_only_its_sources(sample_kb_services: Services) -> None:
    from bot.programs import catalog_for

    catalog = catalog_for(sample_kb_services)
    for program, own in ((A, "expert-dispatch"), (B, "regional-dx")):
        retrieval = sample_kb_services.knowledge.retrieve("申請の締切と費用", sources=catalog.source_filter(program))
        assert retrieval.hits and all(hit.source.name.startswith(own) for hit in retrieval.hits)


def test_each_entry_point_keeps_its_own_conversation(web: httpx.Client, sample_kb_services: Services) -> None:
    for program in (A, B, None):
        ask(web, "メニュー", program, "scope-2")
    with sample_kb_services.db.session() as session:
        programs = sorted(c.program for c in session.execute(select(Conversation)).scalars()
                          if c.person.identities[0].external_user_id == "scope-2")
    assert programs == ["", A, B]


def test_program_pages_and_the_choice_on_the_general_page(web: httpx.Client) -> None:
    assert web.get(f"/p/{B}/").status_code == 200
    assert web.get("/p/no-such-program/").status_code == 404
    listed = web.get("/api/programs").json()["programs"]
    assert [p["id"] for p in listed] == [A, B] and listed[1]["url"] == f"/p/{B}/"
    general = web.get("/api/chat/welcome").json()
    assert [p["url"] for p in general["programs"]] == [f"/p/{A}/", f"/p/{B}/"] and general["program"] is None
    at_a = web.get("/api/chat/welcome", params={"program": A}).json()
    assert at_a["programs"] == [] and at_a["program"]["id"] == A
    assert at_a["examples"]  # from the expert-dispatch FAQ
    assert web.get("/api/chat/welcome", params={"program": B}).json()["examples"] == []  # B has no FAQ entries
    assert "どの事業についてのお問い合わせですか" in web.get("/static/chat.js").text
    unknown = web.post("/api/chat", json={"user_id": "u", "text": "こんにちは", "program": "nope"})
    assert unknown.status_code == 404


# ------------------------------------------------------------------ migration
def test_the_programs_migration_upgrades_existing_data(database_url: str | None, tmp_path: Path) -> None:
    """From the schema before programs (0007) with a conversation and a ticket in it: the conversation becomes a
    general one ('' = no program), the ticket belongs to the default program (NULL), and the new unique key
    lets the same person hold one conversation per entry point."""
    from alembic import command
    from sqlalchemy import text

    from bot.storage.db import Database

    db = Database(database_url or f"sqlite:///{tmp_path / 'm.sqlite3'}")
    cfg = db.alembic_config()
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0007")
        connection.execute(text("INSERT INTO people (id, role, locale, created_at) VALUES (1, 'applicant', 'ja', "
                                "CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO conversations (id, person_id, channel, flow_state, created_at, updated_at)"
                                " VALUES (1, 1, 'web', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO tickets (id, person_id, conversation_id, channel, reason, question, role,"
                                " status, transcript, sources, overdue, created_at) VALUES (1, 1, 1, 'web', "
                                "'asked_human', 'q', 'applicant', 'open', '[]', '[]', false, CURRENT_TIMESTAMP)"))
    db.migrate()
    with db.engine.begin() as connection:
        assert connection.execute(text("SELECT program FROM conversations")).scalar_one() == ""
        assert connection.execute(text("SELECT program FROM tickets")).scalar_one() is None
        connection.execute(text("INSERT INTO conversations (id, person_id, channel, program, flow_state, created_at, "
                                "updated_at) VALUES (2, 1, 'web', 'regional-dx', '{}', CURRENT_TIMESTAMP, "
                                "CURRENT_TIMESTAMP)"))
    with pytest.raises(Exception, match="(?i)unique"), db.engine.begin() as connection:
        connection.execute(text("INSERT INTO conversations (id, person_id, channel, program, flow_state, created_at, "
                                "updated_at) VALUES (3, 1, 'web', '', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    db.dispose()


def test_terminal_chat_offers_the_program_choice_and_answers_in_the_chosen_program(
        sample_kb_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from integrations.cli_root import app

    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(sample_kb_services.settings.data_dir))
    first = CliRunner().invoke(app, ["chat", "--no-ingest", "--user", "t-1"], input="/quit\n")
    assert first.exit_code == 0, first.output
    assert "どの事業についてのお問い合わせですか" in first.output
    number = next(line.split(".")[0].strip() for line in first.output.splitlines() if "地域DX伴走支援事業" in line)
    chosen = CliRunner().invoke(app, ["chat", "--no-ingest", "--user", "t-2"],
                                input=f"{number}\n{ONLY_B}\n/quit\n")
    assert chosen.exit_code == 0, chosen.output
    assert "【地域DX伴走支援事業】の窓口です" in chosen.output and "4月28日" in chosen.output
    direct = CliRunner().invoke(app, ["chat", "--no-ingest", "--user", "t-3", "--program", A],
                                input=f"{ONLY_B}\n/quit\n")
    assert "どの事業について" not in direct.output and "4月28日" not in direct.output


def test_terminal_chat_offers_the_programs_again_after_an_unsure_answer_and_asks_the_question_there(
        sample_kb_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A question the general window is not sure of: the programs are offered again, and choosing one asks that
    same question of the chosen program's documents (no retyping)."""
    import knowledge.learned as learned
    from dataclasses import replace
    from typer.testing import CliRunner

    from integrations.cli_root import app
    from knowledge.model import load_model

    shipped = load_model()
    # answers everything inside a program, nothing at the general entry point
    monkeypatch.setattr(learned, "load_model",
                        lambda: replace(shipped, gate=replace(shipped.gate, threshold=-1.0, general_threshold=2.0)))
    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(sample_kb_services.settings.data_dir))
    monkeypatch.setenv("MADOGUCHI_KNOWLEDGE__ANSWER_THRESHOLD", "0")
    first = CliRunner().invoke(app, ["chat", "--no-ingest", "--user", "t-20"], input=f"{ONLY_B}\n/quit\n")
    assert first.exit_code == 0, first.output
    again = first.output.split("事業を選ぶと、このご質問をその事業の資料でお調べします")
    assert len(again) == 2 and "確実にお答えできる情報が見つかりませんでした" in again[0], first.output
    number = next(line.split(".")[0].strip() for line in again[1].splitlines() if "地域DX伴走支援事業" in line)
    chosen = CliRunner().invoke(app, ["chat", "--no-ingest", "--user", "t-21"],
                                input=f"{ONLY_B}\n{number}\n/quit\n")
    assert chosen.exit_code == 0, chosen.output
    after = chosen.output.split("【地域DX伴走支援事業】の窓口です")
    assert len(after) == 2 and "4月28日" in after[1] and "確実にお答えできる" not in after[1], chosen.output


def test_terminal_chat_says_a_number_no_choice_has_instead_of_asking_it(
        sample_kb_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """While choices are numbered, 「99」 (or 「９９」) is a choice that is not there: said so, with the range, and
    not sent to the knowledge base as a question; a number in range still picks its choice."""
    from typer.testing import CliRunner

    from integrations.cli_root import app

    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(sample_kb_services.settings.data_dir))
    done = CliRunner().invoke(app, ["chat", "--no-ingest", "--user", "t-9"], input="９９\n/quit\n")
    assert done.exit_code == 0, done.output
    assert "その番号の選択肢はありません。1〜" in done.output
    assert "確実にお答えできる情報が見つかりませんでした" not in done.output and "範囲外" not in done.output
    number = next(line.split(".")[0].strip() for line in done.output.splitlines() if "地域DX伴走支援事業" in line)
    picked = CliRunner().invoke(app, ["chat", "--no-ingest", "--user", "t-10"], input=f"{number}\n/quit\n")
    assert "【地域DX伴走支援事業】の窓口です" in picked.output
    circled = CliRunner().invoke(app, ["chat", "--no-ingest", "--user", "t-11"], input="①\n/quit\n")
    assert circled.exit_code == 0 and circled.exception is None, circled.output  # 「①」 is choice 1, not a crash


def test_ingest_for_one_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bot.settings import SAMPLE_KB_DIR
    from integrations.cli_root import app

    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["knowledge", "ingest", "--program", B])
    assert result.exit_code == 0, result.output
    assert "regional-dx-call.md" in result.output and "expert-dispatch" not in result.output
    outside = CliRunner().invoke(app, ["knowledge", "ingest", "--program", B,
                                       str(SAMPLE_KB_DIR / "expert-dispatch-guide.md")])
    assert outside.exit_code == 2 and "knowledge.sources" in outside.output
    assert CliRunner().invoke(app, ["knowledge", "ingest", "--program", "nope"]).exit_code == 2


@needs_browser
def test_in_a_browser_the_general_page_offers_the_programs_and_a_program_page_answers_from_its_sources(
        web: httpx.Client, browser: Any) -> None:
    from playwright.sync_api import expect

    # The session's one Chromium (tests/browser_support.py): a second sync Playwright in the same process
    # fails when another browser test ran first in it.
    context = browser.new_context()
    page = context.new_page()
    page.goto(str(web.base_url))
    expect(page.locator(".msg.bot").first).to_contain_text("こんにちは")
    expect(page.get_by_text("どの事業についてのお問い合わせですか")).to_be_visible()
    page.get_by_role("link", name="地域DX伴走支援").click()
    page.wait_for_url(f"**/p/{B}/")
    expect(page.locator("header")).to_contain_text("地域DX伴走支援")
    expect(page.locator(".msg.bot").first).to_contain_text("こんにちは")
    assert page.get_by_text("どの事業についてのお問い合わせですか").count() == 0
    page.fill("#t", ONLY_B)
    page.keyboard.press("Enter")
    expect(page.locator(".msg.bot").last).to_contain_text("4月28日", timeout=60000)
    context.close()
