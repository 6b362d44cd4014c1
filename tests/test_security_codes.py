"""One-time codes under attack (issue 20, findings 6 and 8): guesses from fresh identities are limited
per client address and overall and create no person; a code never moves someone's hearing answers to
another person without their yes. Real HTTP against uvicorn (each fresh cookie is a fresh identity)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.services import Services
from bot.storage.models import ChannelIdentity, Person
from handlers.accounts import link_codes
from handlers.accounts.registry import add_person
from handlers.hearing.models import FormResponse
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings
from tests.security_helpers import web_visitor


@pytest.fixture
def server(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Services, str]]:
    services = Services.create(make_settings(tmp_path, database_url, limits__link_code_failures_per_ip=10,
                                             limits__link_code_failures_global=25))
    with LiveServer(create_app(services)) as live:
        yield services, live.url
    services.close()


def _guess(url: str, code: str, ip: str) -> str:
    with web_visitor(url, headers={"X-Forwarded-For": ip}) as fresh:  # a new cookie: a new identity
        response = fresh.post("/api/chat", json={"text": code})
        assert response.status_code == 200, response.text
        return str(response.json()["replies"][0]["text"])


def _people(services: Services) -> int:
    with services.db.session() as session:
        return session.execute(select(func.count()).select_from(Person)).scalar_one()


def test_guesses_from_fresh_identities_are_limited_per_address_and_overall(server: tuple[Services, str]) -> None:
    """Finding 8: 100 guesses in 0.8 s, each from a new user_id with its own five tries."""
    services, url = server
    with services.db.session() as session:
        expert = add_person(session, "expert", "正規 太郎")
        good = link_codes.issue(session, "link", hours=1, person_id=expert.id)
    texts = [_guess(url, f"ZZZZ-{n:04d}".replace("0", "Z").replace("1", "Y"), "203.0.113.7") for n in range(12)]
    assert all("コードが正しくありません" in text for text in texts[:10]), texts
    assert all("しばらく受け付けを停止" in text for text in texts[10:]), texts
    assert "しばらく受け付けを停止" in _guess(url, good, "203.0.113.7")  # even a good code from that address
    assert _people(services) == 1  # the registered expert only: no person per failed guess

    for n in range(15):  # other addresses: the overall limit (25) stops the rest
        _guess(url, f"QQQQ-{n:04d}".replace("0", "Q").replace("1", "R"), f"198.51.100.{n}")
    assert "しばらく受け付けを停止" in _guess(url, "WWWW-WWWW", "192.0.2.99")
    assert _people(services) == 1


def test_a_good_code_from_a_fresh_identity_still_links(server: tuple[Services, str]) -> None:
    services, url = server
    with services.db.session() as session:
        expert = add_person(session, "expert", "正規 太郎")
        code = link_codes.issue(session, "link", hours=1, person_id=expert.id)
    assert "正規 太郎様のアカウントとして連携しました" in _guess(url, code, "203.0.113.8")
    with services.db.session() as session:
        identity = session.execute(select(ChannelIdentity)).scalar_one()
        assert identity.verified and identity.person_id == expert.id


def test_linking_never_moves_hearing_answers_without_their_owner_saying_yes(server: tuple[Services, str]) -> None:
    """Finding 6: a code in a link linked the victim's web account to another person and moved the victim's
    hearing answers there (readable with 「戻る」)."""
    services, url = server
    with services.db.session() as session:
        other = add_person(session, "applicant", "他人 次郎")
        attacker_code = link_codes.issue(session, "link", hours=1, person_id=other.id)
    with web_visitor(url) as victim:
        victim.post("/api/chat", json={"text": "ヒアリング開始"})
        victim.post("/api/chat", json={"text": "株式会社被害者"})
        asked = victim.post("/api/chat", json={"text": attacker_code}).json()["replies"][0]
        assert "他人 次郎様のアカウントに連携します" in asked["text"]
        assert [o["value"] for o in asked["options"]] == ["account:link:yes", "account:link:no"]
        declined = victim.post("/api/chat", json={"choice": "account:link:no"}).json()["replies"][0]
        assert "連携しませんでした" in declined["text"]
        forged = victim.post("/api/chat", json={"choice": "account:link:yes"}).json()["replies"][0]
        assert "期限が切れました" in forged["text"]  # nothing pending any more: a forged yes links nothing
    with services.db.session() as session:
        draft = session.execute(select(FormResponse)).scalar_one()
        assert draft.person_id != other.id and draft.answers.get("company_name") == "株式会社被害者"
        identity = session.execute(select(ChannelIdentity)).scalar_one()
        assert identity.person_id != other.id and not identity.verified


def test_an_expert_cannot_confirm_their_own_visit_and_code_confirmations_keep_evidence(
        server: tuple[Services, str]) -> None:
    """Finding 7: an expert confirmed their own visit by sending the confirmation code from a fresh session."""
    from datetime import date

    from bot.storage.models import StaffNotification, utcnow
    from handlers.visits.models import Visit, VisitConfirmationEvidence
    from handlers.visits.rules import rules_for
    from handlers.visits.service import plan_visit
    from handlers.accounts.registry import add_company

    services, url = server
    expert_side = {"X-Forwarded-For": "198.51.100.7", "User-Agent": "ExpertPhone/1.0"}
    with services.db.session() as session:
        company = add_company(session, "株式会社確認")
        expert = add_person(session, "expert", "自作 自演")
        link = link_codes.issue(session, "link", hours=1, person_id=expert.id)
        visits = [plan_visit(session, rules_for(date.today()), expert_id=expert.id, company_id=company.id,
                             day=date.today()).visit for _ in range(2)]
        for visit in visits:  # the day's steps done; the company's contact has no linked account
            visit.status, visit.checkin_at, visit.checkout_at = "checked_out", utcnow(), utcnow()
        codes = [link_codes.issue(session, "visit_confirm", hours=2, visit_id=visit.id) for visit in visits]
        visit_ids = [visit.id for visit in visits]

    def confirm(client: httpx.Client, code: str, visit_id: int, name: str) -> str:
        asked = client.post("/api/chat", json={"text": code}).json()["replies"][0]
        if "支援を受けましたか" not in asked["text"]:
            return str(asked["text"])
        client.post("/api/chat", json={"choice": f"visits:confirm:{visit_id}"})
        return str(client.post("/api/chat", json={"text": name}).json()["replies"][0]["text"])

    with web_visitor(url, headers=expert_side) as own:
        assert "連携しました" in own.post("/api/chat", json={"text": link}).json()["replies"][0]["text"]
        assert "ご自身の訪問は確認できません" in own.post("/api/chat", json={"text": codes[0]}).json()["replies"][0]["text"]
    with services.db.session() as session:
        assert session.get(Visit, visit_ids[0]).status == "checked_out"

    with web_visitor(url, headers=expert_side) as fresh:  # a fresh session on the expert's phone
        assert "ありがとうございました" in confirm(fresh, codes[0], visit_ids[0], "鈴木 一郎")
    with web_visitor(url, headers={"X-Forwarded-For": "203.0.113.50", "User-Agent": "SMEPhone/2.0"}) as sme:
        assert "ありがとうございました" in confirm(sme, codes[1], visit_ids[1], "佐藤 花子")

    with services.db.session() as session:
        evidence = {e.visit_id: e for e in session.execute(select(VisitConfirmationEvidence)).scalars()}
        suspicious, honest = evidence[visit_ids[0]], evidence[visit_ids[1]]
        assert suspicious.flagged and "same network" in (suspicious.flag_reason or "")
        assert "same browser" in (suspicious.flag_reason or "")
        assert (suspicious.typed_name, suspicious.client_ip, suspicious.user_agent) == (
            "鈴木 一郎", "198.51.100.7", "ExpertPhone/1.0")
        assert not honest.flagged and (honest.typed_name, honest.client_ip) == ("佐藤 花子", "203.0.113.50")
        assert "confirmation_from_expert_side" in session.get(Visit, visit_ids[0]).flags
        flagged = session.execute(select(StaffNotification).where(
            StaffNotification.kind == "visit.confirmation_flagged")).scalars().all()
        assert [n.subject_id for n in flagged] == [str(visit_ids[0])]
