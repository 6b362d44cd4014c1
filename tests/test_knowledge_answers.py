"""Answers from the shipped sample knowledge base: citations, normalization, abstention, the eval contract."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from integrations.cli_root import app
from bot.engine import Engine
from bot.messages import InboundMessage
from bot.privacy import mask_personal_data
from bot.services import Services
from knowledge.tokenize import tokens


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("専門家派遣は年に何回まで使えますか？", "3回"),
        ("専門家派遣は１年度に何回まで？", "3回"),                 # full-width digit
        ("謝金は1時間いくらですか", "5,280円"),
        ("宿泊費の上限は？", "9,800円"),
        ("電話の問合せ窓口の受付時間を教えて", "10:00"),           # 問合せ / 問い合わせ
        # the first questions a demo user types: the FAQ says 申し込む and 「どうすれば」, the question
        # 申込 and 方法
        ("専門家派遣の申込方法は？", "派遣可能機関"),
        # 単価 and 時間 are words the FAQ entry does not say: the guide's unit answers
        ("謝金の時間単価は？", "5,280円"),
        # the fiscal year the sample is says which edition, not what about (the FAQ entry never says it)
        ("令和8年度の謝金は1時間いくら？", "5,280円"),
        ("２０２６年度の宿泊費の上限は？", "9,800円"),
    ],
)
def test_confident_answers_cite_their_source(sample_kb_services: Services, question: str, expected: str) -> None:
    answer = sample_kb_services.knowledge.ask(question)
    assert answer.confident, (question, answer.confidence, answer.features, answer.body)
    assert expected in answer.body
    assert "出典：" in answer.text and answer.citations[0].source.startswith("expert-dispatch")
    assert len(answer.body) <= 300


@pytest.mark.parametrize(
    ("question", "expected"),
    # 1年 and 来てもらえる for the entry's 1年度 and 受けられる: the FAQ stage and the unit gate stay below their
    # thresholds (the models refitted on the 2,775-question bank); 企業 for 支援を受けた企業 and チェックアウトの時 for
    # チェックアウトの際 (below them since the refit on 3,334 set the FAQ stage's threshold at 0.9496)
    [("1年に何回来てもらえる？", "3回"), ("チェックアウトの時に企業は何をしますか", "サイン")],
)
def test_a_rewording_below_the_faq_stages_threshold_quotes_the_entry_that_answers_it(
        sample_kb_services: Services, question: str, expected: str) -> None:
    """The FAQ stage answers at 95% out-of-fold precision (docs/BENCHMARKS.md): this rewording of a sample
    entry falls below it, so the reply is the unsure one, and its first excerpt is the entry that says it."""
    answer = sample_kb_services.knowledge.ask(question)
    assert not answer.confident and answer.kind == "unsure", answer
    assert expected in answer.excerpts[0].text and answer.citations[0].source.startswith("expert-dispatch")


@pytest.mark.parametrize(
    "question",
    ["今日の東京の天気は？", "おいしいカレーの作り方を教えて", "来月の株価を予想して", "猫が餌を食べません",
     # names nothing but the kind of fact: the guide has no 締切, and 「翌月末までに報告」 is none
     "締切はいつですか"],
)
def test_out_of_scope_questions_are_not_answered_confidently(sample_kb_services: Services, question: str) -> None:
    assert not sample_kb_services.knowledge.ask(question).confident


def test_sudachi_normalizes_spelling_variants() -> None:
    assert "問い合わせ" in tokens("問合せ") and "問い合わせ" in tokens("お問い合わせ")
    assert "5280" in tokens("５，２８０円")


def test_faq_handler_in_chat_answers_with_source_or_offers_a_person(sample_kb_services: Services) -> None:
    engine = Engine(sample_kb_services)
    good = engine.handle(InboundMessage(channel="cli", external_user_id="u", text="日当はどんなときに出ますか？"))
    assert "1,100円" in good[0].text and "出典：" in good[0].text
    unsure = engine.handle(InboundMessage(channel="cli", external_user_id="u", text="離婚の手続きを教えてください"))
    assert unsure[0].meta["outcome"] in ("unsure", "outside") and not unsure[0].meta["confident"]
    assert [o.label for o in unsure[0].options] == ["担当者に問い合わせる"]
    # asked on a Saturday (outside the window's hours), the reply says when a person will answer: 10:00
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    contact = engine.handle(InboundMessage(channel="cli", external_user_id="u", choice=unsure[0].options[0].value,
                                           timestamp=saturday))
    assert "10:00" in contact[0].text


def test_answer_and_eval_commands(sample_kb_services: Services, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(sample_kb_services.settings.data_dir))
    from bot.settings import get_settings

    get_settings.cache_clear()
    questions = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "question": "専門家派遣は年に何回まで使えますか？", "expect_any": ["3回"], "source": "expert-dispatch-faq.yaml",
         "in_scope": True},
        {"id": "b", "question": "猫が餌を食べない", "expect_any": [], "in_scope": False},
    ]
    questions.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["knowledge", "answer", "--in", str(questions), "--out", str(out)])
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [a["id"] for a in answers] == ["a", "b"]
    assert set(answers[0]) >= {"id", "answer", "confident", "citations", "latency_ms"}
    assert set(answers[0]["citations"][0]) >= {"source", "title", "section", "score"}
    assert answers[0]["confident"] and not answers[1]["confident"]

    evaluated = runner.invoke(app, ["knowledge", "eval", "--questions", str(questions), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output)
    assert report["accuracy"] == 1.0 and report["abstention"] == 1.0 and report["precision"] == 1.0
    assert report["recall_at_5"] == 1.0 and report["p95_ms"] > 0


def test_personal_data_is_masked() -> None:
    text = ("山田太郎様の電話は03-1234-5678、携帯090-1234-5678、メールtaro@example.co.jp、"
            "〒123-4567 東京都千代田区霞が関1-3-1 です。")
    masked = mask_personal_data(text)
    for secret in ("山田", "03-1234-5678", "090-1234-5678", "taro@example.co.jp", "123-4567", "霞が関1-3-1"):
        assert secret not in masked, (secret, masked)
