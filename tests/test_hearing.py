"""The hearing sheet driven as whole conversations through the engine (SQLite and PostgreSQL)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.engine import Engine
from bot.messages import InboundMessage, Reply
from bot.services import Services
from bot.storage.audit import verify_chain
from bot.storage.models import AuditEvent, ChannelIdentity, Person, StaffNotification
from handlers.hearing.chat import SUMMARY, HearingHandler
from handlers.hearing.models import FormResponse
from handlers.hearing.schema import catalog
from tests.conftest import make_settings
from tests.hearing_script import EXPECTED, TOTAL_QUESTIONS, answer_for, progress
from tests.conftest import send as shared_send

send = partial(shared_send, user="sme-1")


def question_reply(replies: list[Reply]) -> Reply:
    return next(r for r in replies if "【" in r.text)


def run_to_summary(engine: Engine, replies: list[Reply], **kw: object) -> list[Reply]:
    """Answer every question with the script until the summary appears."""
    for _ in range(60):
        if any("ご回答内容の確認" in r.text for r in replies):
            return replies
        typed = answer_for(question_reply(replies).text)
        replies = send(engine, typed, **kw)  # type: ignore[arg-type]
    raise AssertionError("the interview did not reach the summary")


def stored_response(services: Services) -> FormResponse:
    with services.db.session() as session:
        return session.execute(select(FormResponse).order_by(FormResponse.id.desc())).scalars().first()


def test_full_interview_with_summary_edit_and_submit(engine: Engine, services: Services) -> None:
    replies = send(engine, "ヒアリング開始")
    assert "全33問" in replies[0].text
    assert progress(question_reply(replies).text) == (1, 33)
    seen_positions = []
    for _ in range(60):
        if any("ご回答内容の確認" in r.text for r in replies):
            break
        question = question_reply(replies)
        seen_positions.append(progress(question.text))
        replies = send(engine, answer_for(question.text))
    assert [p[0] for p in seen_positions] == list(range(1, TOTAL_QUESTIONS + 1))
    summary = replies[0].text
    assert "1. 企業名：株式会社窓口製作所" in summary
    assert "社員数：50人" in summary and "法人番号：（未回答）" in summary
    assert "ITシステム導入状況：会計・経理、在庫・生産管理" in summary
    assert [o.value for o in replies[1].options][:2] == ["hearing:submit", "hearing:edit"]

    # Fix item 5 (社員数) by its number, then submit.
    replies = send(engine, "5")
    assert "社員数" in replies[0].text and "現在の回答：50人" in replies[0].text
    replies = send(engine, "６０名くらい")
    assert "社員数：60人" in replies[0].text
    replies = send(engine, choice="hearing:submit")
    assert "受付番号：H-" in replies[0].text

    response = stored_response(services)
    assert response.status == "submitted" and response.submitted_at is not None
    assert response.answers == EXPECTED | {"employees": 60}
    assert "industry_other" not in response.answers
    assert response.labels["employees"] == "社員数"
    with services.db.session() as session:
        notification = session.execute(select(StaffNotification)).scalar_one()
        assert notification.kind == "hearing.submitted" and "株式会社窓口製作所" in notification.title
        actions = set(session.execute(select(AuditEvent.action)).scalars())
        assert {"hearing.started", "hearing.submitted", "staff.notified"} <= actions
        assert verify_chain(session).ok
    # The flow is over: a new message is a question again, not an answer.
    assert "【" not in send(engine, "メニュー")[0].text


def test_invalid_answers_are_re_asked_politely_and_nothing_is_stored(engine: Engine, services: Services) -> None:
    send(engine, "ヒアリング開始")
    send(engine, "株式会社テスト")
    send(engine, "スキップ")
    send(engine, "部品加工")
    send(engine, "製造業")
    for typed, expectation in [("たくさん", "数字でお答えください"), ("50~60人", "数字を一つ"),
                               ("0人", "1〜100,000人の範囲")]:
        replies = send(engine, typed)
        assert len(replies) == 1
        assert expectation in replies[0].text, replies[0].text
        assert "【5/32】" in replies[0].text and "社員数" in replies[0].text
    assert "employees" not in stored_response(services).answers
    for typed, expectation in [("ABC", "郵便番号を7桁"), ]:
        send(engine, "三十")
        assert stored_response(services).answers["employees"] == 30
        replies = send(engine, typed)
        assert expectation in replies[0].text
    send(engine, "100-0001")
    assert "都道府県から住所" in send(engine, "どこか")[0].text
    send(engine, "大阪府大阪市北区1-1")
    send(engine, "山田")
    assert "市外局番から" in send(engine, "12345")[0].text
    send(engine, "+81 90 1234 5678")
    assert stored_response(services).answers["contact_phone"] == "09012345678"
    assert "メールアドレスの形式" in send(engine, "yamada@")[0].text


def test_back_skip_and_required_items(engine: Engine, services: Services) -> None:
    replies = send(engine, "ヒアリング開始")
    assert not any(o.value == "hearing:back" for o in question_reply(replies).options)
    assert "最初の質問です" in send(engine, "戻る")[0].text
    send(engine, "株式会社A")
    replies = send(engine, "戻る")
    assert "企業名" in replies[0].text and "現在の回答：株式会社A" in replies[0].text
    send(engine, "株式会社B")
    replies = send(engine, "1234567890123")  # wrong check digit
    assert "確認用の数字が合いません" in replies[0].text
    replies = send(engine, choice="hearing:skip:corporate_number")
    assert "事業の概要" in replies[0].text
    assert "必須のため、スキップできません" in send(engine, "スキップ")[0].text
    response = stored_response(services)
    assert response.answers == {"company_name": "株式会社B", "corporate_number": None}


def test_valid_corporate_number_is_accepted(engine: Engine, services: Services) -> None:
    send(engine, "ヒアリング開始")
    send(engine, "株式会社A")
    send(engine, "7000012050002")  # 国税庁の法人番号（check digit 7）
    assert stored_response(services).answers["corporate_number"] == "7000012050002"


def test_buttons_pick_toggle_confirm_and_stale_buttons(engine: Engine, services: Services) -> None:
    send(engine, "ヒアリング開始")
    for typed in ["株式会社A", "スキップ", "部品加工"]:
        send(engine, typed)
    replies = send(engine, choice="hearing:pick:industry:9")  # その他
    assert "具体的な業種" in replies[0].text  # the conditional question appears
    assert progress(replies[0].text) == (5, 33)
    send(engine, "精密機器の修理")
    replies = send(engine, choice="hearing:pick:industry:0")  # an old button: already answered
    assert "回答済み" in replies[0].text and "社員数" in replies[0].text
    for typed in ["10", "100-0001", "東京都港区1-1", "山田", "03-1111-2222", "a@example.jp", "意欲あり", "3",
                  "はい", "はい"]:
        replies = send(engine, typed)
    assert "ITシステム" in replies[0].text
    replies = send(engine, choice="hearing:done:it_systems")
    assert "一つ以上選んでから" in replies[0].text
    send(engine, choice="hearing:toggle:it_systems:0")
    replies = send(engine, choice="hearing:toggle:it_systems:3")
    assert "選択中：会計・経理、顧客管理（CRM）" in replies[0].text
    assert replies[0].options[0].label.startswith("✓ ")
    send(engine, choice="hearing:toggle:it_systems:0")  # untoggle
    replies = send(engine, choice="hearing:done:it_systems")
    assert "デジタル化の状況" in replies[0].text
    answers = stored_response(services).answers
    assert answers["industry"] == "other" and answers["industry_other"] == "精密機器の修理"
    assert answers["it_systems"] == ["crm"]


def test_changing_an_answer_at_the_summary_asks_newly_applicable_questions(engine: Engine, services: Services) -> None:
    replies = run_to_summary(engine, send(engine, "ヒアリング開始"))
    items = replies[0].text
    assert "活用可能なデータの内容" in items
    # 「活用可能なデータの有無」 is item 31 of 32; change it to いいえ: the detail question disappears.
    number = next(line.split(".")[0] for line in items.splitlines() if "活用可能なデータの有無" in line)
    replies = send(engine, f"{number}番を修正")
    assert "活用できるデータ" in replies[0].text
    replies = send(engine, "いいえ")
    assert "ご回答内容の確認（31項目）" in replies[0].text
    assert "活用可能なデータの内容" not in replies[0].text
    # And 業種 -> その他 makes 「業種（その他）」 applicable: it is asked before returning to the summary.
    replies = send(engine, "4")
    replies = send(engine, "その他")
    assert "具体的な業種" in replies[0].text
    replies = send(engine, "精密機器の修理")
    assert "業種（その他）：精密機器の修理" in replies[0].text
    send(engine, "送信")
    answers = stored_response(services).answers
    assert answers["has_data"] is False and "data_detail" not in answers
    assert answers["industry"] == "other"


def test_question_mid_form_is_answered_and_the_form_continues(sample_kb_services: Services) -> None:
    engine = Engine(sample_kb_services)
    user = "mid-form"
    send(engine, "ヒアリング開始", user=user)
    replies = send(engine, "専門家派遣は年に何回まで使えますか？", user=user)
    assert "3回" in replies[0].text  # the FAQ answer
    assert "企業名" in replies[-1].text and "【1/33】" in replies[-1].text
    send(engine, "株式会社途中質問", user=user)
    replies = send(engine, "謝金はいくらですか？", user=user)
    assert "5,280円" in replies[0].text
    assert "法人番号" in replies[-1].text
    with sample_kb_services.db.session() as session:
        response = session.execute(
            select(FormResponse).join(Person).join(ChannelIdentity)
            .where(ChannelIdentity.external_user_id == user)
        ).scalar_one()
        assert response.answers == {"company_name": "株式会社途中質問"}


def test_interrupt_and_resume_after_restart_and_on_another_linked_channel(tmp_path: Path,
                                                                          database_url: str | None) -> None:
    first = Services.create(make_settings(tmp_path, database_url))
    engine = Engine(first)
    send(engine, "ヒアリング開始")
    for typed in ["株式会社再開", "スキップ", "部品加工"]:
        send(engine, typed)
    replies = send(engine, "中断")
    assert "3問目まで保存しました" in replies[0].text and "中断しました" in replies[1].text
    assert "【" not in send(engine, "メニュー")[0].text
    first.close()

    # A new process (restart): the answers and the position are still there.
    second = Services.create(make_settings(tmp_path, database_url))
    engine = Engine(second)
    with second.db.session() as session:
        person_id = session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "sme-1")).scalar_one()
        # The same person linked on LINE (account linking issues the identity).
        session.add(ChannelIdentity(person_id=person_id, channel="line", external_user_id="U-line-1",
                                    verified=True))
    replies = send(engine, "ヒアリング開始", channel="line", user="U-line-1")
    assert "前回の続き（4/33）から再開します" in replies[0].text and "業種" in replies[0].text
    replies = run_to_summary(engine, send(engine, "製造業", channel="line", user="U-line-1"),
                             channel="line", user="U-line-1")
    send(engine, choice="hearing:submit", channel="line", user="U-line-1")
    response = stored_response(second)
    assert response.status == "submitted" and response.answers["company_name"] == "株式会社再開"
    with second.db.session() as session:
        assert session.execute(select(func.count()).select_from(FormResponse)).scalar_one() == 1
    # The web conversation still pointed at the flow; it learns the sheet was submitted elsewhere.
    replies = send(engine, "はい")
    assert "既に送信済み" in replies[0].text or "【" not in replies[0].text
    second.close()


def test_restart_discards_the_draft_only_when_asked(engine: Engine, services: Services) -> None:
    send(engine, "ヒアリング開始")
    send(engine, "株式会社旧")
    send(engine, "中断")
    send(engine, choice="hearing:restart")
    with services.db.session() as session:
        statuses = list(session.execute(select(FormResponse.status).order_by(FormResponse.id)).scalars())
    assert statuses == ["abandoned", "in_progress"]


def test_a_crash_while_handling_an_answer_keeps_every_earlier_answer(engine: Engine, services: Services,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.hearing.chat import HearingHandler

    send(engine, "ヒアリング開始")
    send(engine, "株式会社クラッシュ")
    original = HearingHandler._advance

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash between questions")

    monkeypatch.setattr(HearingHandler, "_advance", crash)
    replies = send(engine, "スキップ")
    assert "問題が発生しました" in replies[0].text
    monkeypatch.setattr(HearingHandler, "_advance", original)
    response = stored_response(services)
    assert response.answers == {"company_name": "株式会社クラッシュ"}  # the failed turn left nothing half-done
    assert response.state["cursor"] == "corporate_number"
    replies = send(engine, "スキップ")
    assert "事業の概要" in replies[0].text


def test_redelivered_answer_is_applied_once(engine: Engine, services: Services) -> None:
    send(engine, "ヒアリング開始")
    message = InboundMessage(channel="web", external_user_id="sme-1", text="株式会社二重", platform_message_id="m-1")
    first = engine.handle(message)
    again = engine.handle(message)
    assert [r.text for r in first] == [r.text for r in again]
    response = stored_response(services)
    assert response.state["history"] == ["company_name"] and response.state["cursor"] == "corporate_number"


def test_broken_form_is_a_clear_startup_error(tmp_path: Path) -> None:
    from handlers.hearing.schema import FormDefinitionError

    forms = tmp_path / "forms"
    forms.mkdir()
    (forms / "broken.yaml").write_text(
        "id: broken\nversion: 1\ntitle: 壊れた様式\nsections:\n  - id: s\n    title: 節\n    questions:\n"
        "      - {id: name, prompt: 名前, type: text}\n"
        "      - {id: employees, prompt: 社員数, type: number}\n", encoding="utf-8")
    services = Services.create(make_settings(tmp_path, hearing__forms_dirs=[forms]))
    with pytest.raises(FormDefinitionError) as error:
        Engine(services)
    message = str(error.value)
    assert "broken.yaml" in message and "questions[1](id=employees).type" in message
    services.close()


def test_conditions_must_reference_earlier_questions_and_real_options(tmp_path: Path) -> None:
    from handlers.hearing.schema import FormDefinitionError, load_form

    path = tmp_path / "f.yaml"
    path.write_text(
        "id: f\nversion: 1\ntitle: t\nsections:\n  - id: s\n    title: 節\n    questions:\n"
        "      - {id: kind, prompt: 種類, type: single_choice, options: [A, B]}\n"
        "      - {id: detail, prompt: 詳細, type: text, when: {question: kind, equals: C}}\n", encoding="utf-8")
    with pytest.raises(FormDefinitionError, match="選択肢にありません"):
        load_form(path)
    path.write_text(path.read_text(encoding="utf-8").replace("question: kind", "question: later"), encoding="utf-8")
    with pytest.raises(FormDefinitionError, match="前にない質問"):
        load_form(path)


def test_every_hearing_step_asks_its_question_again_after_a_mid_flow_question(tmp_path: Path,
                                                                              database_url: str | None) -> None:
    """The hearing sheet is a step table generated from its form: every question (the conditional ones too) and the
    summary ask themselves again, buttons included, after a question asked in the middle of the form."""
    services = Services.create(make_settings(tmp_path, database_url, limits__messages_per_user_per_minute=1000))
    engine = Engine(services)
    handler = engine.handlers["hearing"]
    assert isinstance(handler, HearingHandler)
    form = catalog(services).latest("dx-platform")
    assert form is not None
    table = handler.form_steps(form)
    assert list(table) == [q.id for q in form.questions] + [SUMMARY]
    overrides = {"業種を選んでください": "その他", "具体的な業種": "水産加工業"}  # the 業種（その他） step as well

    def asked(replies: list[Reply]) -> tuple[str, list[str]]:
        last = replies[-1]
        return last.text[last.text.find("【"):], [o.value for o in last.options]

    seen = []
    replies = send(engine, "ヒアリング開始")
    while True:
        step = str(stored_response(services).state["cursor"])
        seen.append(step)
        before = asked(replies)
        again = send(engine, "謝金はいくらですか？")
        assert len(again) >= 2 and asked(again) == before, step  # an answer first, then the same question
        if step == SUMMARY:
            assert "ご回答内容の確認" in again[-2].text
            break
        text = question_reply(replies).text
        typed = next((v for k, v in overrides.items() if k in text), None) or answer_for(text)
        replies = send(engine, typed)
    assert seen == list(table)
    services.close()
