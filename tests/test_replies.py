"""What the bot says around an answer, on both pipelines (learned, the default, and classic), in Japanese and
English, as each channel shows it (issue 18 items 7 and 8).

- outside: a question nothing in the documents relates to is declined once, plainly, with the offer of a
  person and no documents;
- unsure: the best one or two related passages as short excerpts (a sentence or phrase, with where they
  stand) under 「関係しそうな記載」, and the offer of a person; the same text on Slack (mrkdwn escaped), LINE,
  Telegram and the web chat;
- edition: a question about another fiscal year or round is declined naming the edition held; an answer
  stating a deadline that has passed (today in Japan, injected) says so;
- a confident answer cites the passage it was taken from, not three sources by habit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.engine import Engine
from bot.messages import InboundMessage, Reply
from bot.services import Services
from bot.settings import Settings
from knowledge import learned
from knowledge.edition import Edition, dates_in, passed_dates
from knowledge.ingest import ingest_paths
from knowledge.model import load_model
from knowledge.replies import EXCERPT_CHARS, short_excerpt
from bot.storage.models import OutboundMessage
from bot.text import normalize
from integrations.channels.slack import TEXT_LIMIT as SLACK_TEXT_LIMIT, SlackSender, mrkdwn
from integrations.web import create_app
from tests import fake_platforms as fp
from tests.browser_support import PHONE, needs_browser
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer, make_settings
from tests.test_channels import Rig, sent_text

PIPELINES = ["learned", "classic"]

#: A call written like the real ones, with what channels must show literally: full-width ＜＞ and ～ (NFKC makes
#: them < > ~), 「&」, 「*」 and 「_」.
CALL = """# 令和8年度 はなみずき市創業支援事業 募集要領

## 1. 事業の目的
はなみずき市は、市内で新たに創業する方の事業計画づくりと資金調達を支援します。

## 2. 応募手続き
### (1) 受付期間
締切日：令和８年６月３０日（火）１７時必着
受付時間は平日10:00～17:00です（年末年始12/29～1/3を除く）。
### (2) ＜応募書類＞
＜応募書類＞は、様式1（申請書）と様式2（事業計画書）です。*印の項目は必ず記入してください。
R&D（研究開発）に係る経費は、別表の区分_A_に従って計上してください。

## 3. 補助の内容
補助金の上限額は1件あたり100万円で、補助率は対象経費の2分の1以内です。
"""

OUTSIDE = "肉じゃがのおいしい作り方を教えて"
UNSURE = "応募書類の様式は？"
DEADLINE = "応募の締切はいつ？"


@pytest.fixture(scope="module", params=PIPELINES)
def call_kb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The call above, ingested and answered by one pipeline."""
    root = tmp_path_factory.mktemp(f"replies-{request.param}")
    docs = root / "docs"
    docs.mkdir()
    (docs / "hanamizuki-call.md").write_text(CALL, encoding="utf-8")
    services = Services.create(Settings(data_dir=root / "data", knowledge={"pipeline": request.param}))
    ingest_paths(services, [docs])
    yield services
    services.close()


@pytest.fixture
def kb(call_kb: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """The module's services with this test's settings restored afterwards and no answers cached between tests."""
    knowledge = call_kb.settings.knowledge
    monkeypatch.setattr(call_kb.settings, "locale", "ja")
    monkeypatch.setattr(knowledge, "answer_threshold", knowledge.answer_threshold)
    monkeypatch.setattr(call_kb.knowledge, "today", call_kb.knowledge.today)
    call_kb.knowledge._answers.clear()
    yield call_kb
    call_kb.knowledge._answers.clear()


def ask(services: Services, text: str, user: str, channel: str = "cli") -> Reply:
    (reply,) = Engine(services).handle(InboundMessage(channel=channel, external_user_id=user, text=text))
    return reply


def never_sure(services: Services) -> None:
    """An operator's threshold no answer reaches: every reply is the not-sure one (both pipelines)."""
    services.settings.knowledge.answer_threshold = 1.01


def always_sure(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every best answer is given (to see what a confident answer says): the classic answerer at threshold 0,
    the learned one with its shipped model's gate opened."""
    services.settings.knowledge.answer_threshold = 0.0
    model = load_model()
    monkeypatch.setattr(learned, "load_model",
                        lambda: replace(model, gate=replace(model.gate, threshold=-1.0, general_threshold=None)))


# --------------------------------------------------------------------------------------------- outside
@pytest.mark.parametrize("locale", ["ja", "en"])
def test_a_question_nothing_relates_to_is_declined_once_with_a_person_and_no_documents(kb: Services,
                                                                                      locale: str) -> None:
    kb.settings.locale = locale
    reply = ask(kb, OUTSIDE, f"outside-{locale}")
    assert reply.meta["outcome"] == "outside" and reply.meta["citations"] == []
    lines = reply.text.split("\n")
    if locale == "ja":
        assert lines == ["申し訳ありません。このご質問は、この窓口でご案内している支援事業の範囲外のため、お答えできません。",
                         "担当者にお問い合わせいただけます。"]
    else:
        assert len(lines) == 2 and "outside" in lines[0] and "staff member" in lines[1]
    assert "見つかりませんでした" not in reply.text and "はなみずき" not in reply.text and "関係しそう" not in reply.text
    assert [o.value for o in reply.options] == ["contact:human"]


# ---------------------------------------------------------------------------------------------- unsure
def test_an_excerpt_is_cut_at_a_sentence_or_phrase_boundary_around_the_questions_word() -> None:
    text = ("本事業の実施に当たっては、事業者の選定、支援計画の作成、専門家の派遣、成果の取りまとめを行うものとし、"
            "各段階で事務局と協議すること。報告書は、事業完了日から30日以内又は令和9年3月10日のいずれか早い日までに、"
            "電子メールにより1,250,000円の精算書とともに提出すること。なお、報告書の様式は別途定めるものとし、"
            "記載の方法については事務局が説明会を開催して周知する。")
    excerpt = short_excerpt(text, ["報告書", "提出"])
    assert len(excerpt) <= EXCERPT_CHARS and "報告書" in excerpt
    assert excerpt.startswith("…報告書は、"), "it starts at the sentence holding the word"
    assert excerpt.endswith("提出すること。…"), "it ends with that sentence, and says the text goes on"
    assert short_excerpt("短い文です。", ["文"]) == "短い文です。"
    # A sentence longer than the limit is cut after a phrase, never inside a number (「1,250,000円」).
    long = "申請者は、" + "、".join(f"第{n}号様式の記載事項{n * 1000:,}円分" for n in range(1, 30)) + "を提出すること。"
    cut = short_excerpt(long, ["第20号様式"])
    assert len(cut) <= EXCERPT_CHARS and cut.startswith("…") and cut.endswith("、…") and "第20号様式" in cut


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_an_unsure_reply_quotes_one_or_two_short_excerpts_with_their_section_and_offers_a_person(
        kb: Services, locale: str) -> None:
    never_sure(kb)
    kb.settings.locale = locale
    reply = ask(kb, UNSURE, f"unsure-{locale}")
    assert reply.meta["outcome"] == "unsure" and [o.value for o in reply.options] == ["contact:human"]
    lines = reply.text.split("\n")
    heading = "関係しそうな記載：" if locale == "ja" else "Possibly related passages:"
    # the excerpts, then (at a general entry point of several programs) the hint to name one, then the offer
    excerpts = [line for line in lines[lines.index(heading) + 1:-1] if line.startswith("・")]
    assert 1 <= len(excerpts) <= 2, lines
    for line in excerpts:
        quoted, where = line.removeprefix("・「").rsplit("」（", 1)
        assert len(quoted) <= EXCERPT_CHARS and where.startswith("はなみずき市創業支援事業 ／ "), line
    assert "応募書類" in reply.text
    # The reply's citations are the passages quoted, each once (the web chat links them).
    assert 1 <= len(reply.meta["citations"]) <= len(excerpts)
    assert lines[-1] == ("担当者にお問い合わせいただけます。" if locale == "ja" else "You can ask a staff member.")


# --------------------------------------------------------------------------------------------- edition
@pytest.mark.parametrize("locale", ["ja", "en"])
def test_a_question_about_another_fiscal_year_or_round_is_declined_naming_the_edition_held(
        kb: Services, locale: str) -> None:
    kb.settings.locale = locale
    for n, question in enumerate(["令和7年度のはなみずき市創業支援事業の締切はいつでしたか", "去年の締切はいつ？",
                                  "はなみずき市創業支援事業の2次公募はありますか"]):
        reply = ask(kb, question, f"edition-{locale}-{n}")
        assert reply.meta["outcome"] == "other_edition" and not reply.meta["confident"], question
        held = ("はなみずき市創業支援事業（令和8年度版、締切 令和8年6月30日）" if locale == "ja"
                else "はなみずき市創業支援事業 (FY2026 edition, applications until 2026-06-30)")
        assert held in reply.text and [o.value for o in reply.options] == ["contact:human"], reply.text
    # The applicant's own last year is no other edition of the call.
    assert ask(kb, "前年度の売上が少なくても応募できますか", f"edition-{locale}-own").meta["outcome"] != "other_edition"


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_an_answer_stating_a_deadline_that_has_passed_says_so(kb: Services, locale: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    always_sure(kb, monkeypatch)
    kb.settings.locale = locale
    kb.knowledge.today = lambda: date(2026, 7, 1)
    after = ask(kb, DEADLINE, f"deadline-{locale}-after")
    assert after.meta["outcome"] == "answered" and "6月30日" in after.text
    note = ("※この期日（令和8年6月30日）はすでに過ぎています（本日 令和8年7月1日）" if locale == "ja"
            else "Note: this date (2026-06-30) has already passed (today is 2026-07-01)")
    assert note in after.text and after.text.index("6月30日") < after.text.index(note)
    kb.knowledge.today = lambda: date(2026, 6, 30)  # the deadline day itself: not passed
    before = ask(kb, DEADLINE, f"deadline-{locale}-before")
    assert before.meta["outcome"] == "answered" and "過ぎて" not in before.text and "passed" not in before.text


def test_a_period_is_over_only_when_its_last_day_has_passed() -> None:
    edition = Edition("x", 2026)
    period = "応募の受付期間は、令和8年4月7日から4月28日までです。"
    assert dates_in(period, None) == [date(2026, 4, 7), date(2026, 4, 28)], "4月28日 is in the year written before it"
    assert passed_dates(period, edition, date(2026, 4, 10)) == [], "open: its start has passed, its end has not"
    assert passed_dates(period, edition, date(2026, 4, 29))[-1] == date(2026, 4, 28)
    assert dates_in("令和8年12月1日から1月15日まで", None)[-1] == date(2027, 1, 15)


# ------------------------------------------------------------------------------------------- citations
def test_a_confident_answer_cites_the_passage_it_was_taken_from_alone(kb: Services,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    always_sure(kb, monkeypatch)
    answer = kb.knowledge.ask("補助金の上限額はいくらですか")
    assert answer.confident and "100万円" in answer.body
    (citation,) = answer.citations
    assert citation.section.endswith("3. 補助の内容"), citation
    reply = ask(kb, "補助金の上限額はいくらですか", "cites")
    assert [c["section"] for c in reply.meta["citations"]] == [citation.section]
    assert reply.text.endswith(f"出典：{citation.label()}")


# -------------------------------------------------------------------------------------------- channels
@pytest.fixture
def unsure_rig(tmp_path: Path) -> Iterator[Rig]:
    """Slack, Telegram and LINE (a local fake of their APIs, reached through their SDKs) and the web API over the
    call above, answered by the default pipeline with an operator's threshold no answer reaches."""
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(
            tmp_path, None, knowledge__answer_threshold=1.01, staff__api_token=CHAT_TOKEN,
            slack__bot_token="xoxb-test", slack__signing_secret=fp.SLACK_SECRET, slack__api_url=f"{fake.url}/slack/api/",
            telegram__bot_token=fp.TELEGRAM_TOKEN, telegram__secret_token=fp.TELEGRAM_SECRET,
            telegram__api_url=f"{fake.url}/telegram/bot",
            line__channel_secret=fp.LINE_SECRET, line__channel_access_token="line-token", line__api_url=f"{fake.url}/line")
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "hanamizuki-call.md").write_text(CALL, encoding="utf-8")
        services = Services.create(settings)
        ingest_paths(services, [docs])
        with LiveServer(create_app(services)) as server:
            yield Rig(services, platform, server.url)
        services.close()


def test_the_unsure_reply_is_shown_literally_on_every_channel(unsure_rig: Rig) -> None:
    rig = unsure_rig
    expected = ask(rig.services, UNSURE, "reference")
    assert expected.meta["outcome"] == "unsure"
    said = expected.text
    assert "<応募書類>" in said and "関係しそうな記載：" in said, said  # what a channel could misread is there

    # LINE and Telegram show plain text: the reply exactly as written, with no markup mode.
    rig.line(fp.line_text(UNSURE))
    assert sent_text(rig.platform.wait_for("line", 1, "reply")[0]) == said
    rig.telegram(fp.telegram_text(UNSURE, 1))
    (telegram,) = rig.platform.wait_for("telegram", 1, "sendMessage")
    assert sent_text(telegram) == said and "parse_mode" not in telegram.body

    # Slack reads mrkdwn: &, < and > escaped as Slack asks, its formatting marks (* _ ~ `) full-width.
    rig.slack(UNSURE)
    (slack,) = rig.platform.wait_for("slack", 1, "chat.postMessage")
    shown = slack.body["blocks"][0]["text"]
    assert slack.body["blocks"][0]["text"]["type"] == "mrkdwn" and shown["text"] == slack.body["text"]
    assert not re.search(r"<|>|&(?!amp;|lt;|gt;)|[*_~`]", shown["text"]), shown["text"]
    literal = shown["text"].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert literal == said.translate(str.maketrans("*_~`", "＊＿～｀"))

    # The web chat's API gives the text as written (the page shows it as text, see the browser test).
    web = httpx.post(f"{rig.url}/api/chat", json={"user_id": "web-1", "text": UNSURE}, headers=CHAT_HEADERS, timeout=60)
    (page_reply,) = web.json()["replies"]
    assert page_reply["text"] == said and page_reply["outcome"] == "unsure"


@needs_browser
def test_the_web_chat_shows_the_excerpts_as_text_and_marks_the_outcome(browser: Any, unsure_rig: Rig) -> None:
    from playwright.sync_api import expect

    page = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="ja-JP").new_page()
    page.goto(unsure_rig.url)
    page.wait_for_selector("body[data-ready='1']")
    page.get_by_label("メッセージ").fill(UNSURE)
    page.get_by_label("メッセージ").press("Enter")
    reply = page.locator(".msg.bot").last
    expect(reply).to_have_attribute("data-outcome", "unsure")
    expect(reply).to_contain_text("関係しそうな記載：")
    expect(reply).to_contain_text("<応募書類>")  # a document's ＜…＞ is text, not markup
    page.get_by_label("メッセージ").fill(OUTSIDE)
    page.get_by_label("メッセージ").press("Enter")
    expect(page.locator(".msg.bot").last).to_have_attribute("data-outcome", "outside")
    expect(page.locator(".msg.bot").last.locator(".cites")).to_have_count(0)  # no documents listed
    page.context.close()


def test_a_long_reply_is_cut_for_slack_as_slack_counts_it(tmp_path: Path) -> None:
    """Slack's section holds 3000 characters of the escaped text: a reply is cut after escaping, so a text full of
    「&」 and 「<…>」 never overflows a section."""
    platform = fp.FakePlatforms()
    text = "R&D（研究開発）の経費は＜様式1＞に書きます。" * 150  # 4,050 characters, 5,250 once escaped
    with LiveServer(platform.app()) as fake:
        settings = make_settings(tmp_path, None, slack__bot_token="xoxb-test", slack__signing_secret=fp.SLACK_SECRET,
                                 slack__api_url=f"{fake.url}/slack/api/")
        SlackSender(settings).send(OutboundMessage(id=1, channel="slack", external_user_id="U1", payload={}),
                                   [Reply(text=normalize(text))])
    sections = [c.body["blocks"][0]["text"]["text"] for c in platform.calls if c.method == "chat.postMessage"]
    assert len(sections) >= 2 and all(len(s) <= SLACK_TEXT_LIMIT for s in sections), [len(s) for s in sections]
    shown = "".join(sections).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert shown == normalize(text)


def test_slack_keeps_links_and_addresses_as_written() -> None:
    shown = mrkdwn("区分_A_、10:00~17:00。連絡先 info_desk@example.jp、https://example.jp/a_b?c=1&d=2 をご覧ください")
    assert "区分＿A＿、10:00～17:00" in shown
    assert "info_desk@example.jp" in shown and "https://example.jp/a_b?c=1&amp;d=2" in shown
