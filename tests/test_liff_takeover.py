"""The LIFF form takes over a hearing begun in the LINE chat (issue 22): it opens with the answers given so far,
and its submission completes that same response and ends the chat's flow: one response, not two."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.storage.models import Conversation
from handlers.hearing.models import FormResponse
from tests.hearing_script import answer_for
from tests.test_line_liff_richmenu import LOGIN_CHANNEL, Liff, liff_rig, typed_answers  # noqa: F401

USER = "U-line-halfway"


def begin_in_chat(rig: Liff, answered: int) -> list[str]:
    """「ヒアリング開始」 in program alpha's LINE chat, then the first `answered` questions; the last replies."""
    engine = Engine(rig.services)

    def say(text: str) -> list[str]:
        return [r.text for r in engine.handle(InboundMessage(channel="line", program="alpha", external_user_id=USER,
                                                             text=text))]

    texts = say("ヒアリング開始")
    for _ in range(answered):
        texts = say(answer_for(next(t for t in texts if "【" in t)) or "")
    return texts


def draft(rig: Liff, token: str) -> httpx.Response:
    return httpx.post(f"{rig.url}/liff/alpha/hearing/draft", json={"id_token": token}, timeout=30)


def test_the_liff_form_takes_over_a_hearing_begun_in_chat(liff_rig: Liff) -> None:  # noqa: F811
    begin_in_chat(liff_rig, answered=5)  # company name, corporate number (skipped), summary, industry, employees
    token = liff_rig.platform.issue_id_token(USER, LOGIN_CHANNEL)
    opened = draft(liff_rig, token)
    assert opened.status_code == 200, opened.text
    body = opened.json()
    assert body["number"].startswith("H-")
    assert body["answers"] == {"company_name": "株式会社窓口製作所", "business_summary": "自動車部品の精密加工",
                               "industry": "製造業", "employees": "50"}  # the page's field values
    # what the page sends: the prefilled values as they are, and the rest typed in
    answers = typed_answers() | body["answers"]
    stored = liff_rig.submit(token, answers)
    assert stored.status_code == 200, stored.text
    assert stored.json()["number"] == body["number"]  # the same response, completed
    with liff_rig.services.db.session() as session:
        responses = list(session.execute(select(FormResponse)).scalars())
        assert [(r.status, r.channel) for r in responses] == [("submitted", "liff")]
        assert responses[0].answers["employees"] == 50 and responses[0].program == "alpha"
        conversation = session.execute(select(Conversation).where(Conversation.channel == "line")).scalar_one()
        assert conversation.active_flow is None and conversation.flow_state == {}
    # the chat flow ended cleanly: a next message is no answer to the hearing sheet's next question
    after = Engine(liff_rig.services).handle(InboundMessage(channel="line", program="alpha", external_user_id=USER,
                                                            text="ヘルプ"))
    assert not any("【" in reply.text for reply in after)
    with liff_rig.services.db.session() as session:
        assert len(list(session.execute(select(FormResponse)).scalars())) == 1


def test_the_draft_needs_a_token_line_vouches_for(liff_rig: Liff) -> None:  # noqa: F811
    begin_in_chat(liff_rig, answered=1)
    assert draft(liff_rig, "eyJ.forged").status_code == 401
    other = liff_rig.platform.issue_id_token("U-someone-else", LOGIN_CHANNEL)
    assert draft(liff_rig, other).json() == {"answers": {}, "number": None}  # nobody else's hearing
