"""Visits end to end through the engine: two people on two channels, codes, rules and the report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr
from openpyxl import load_workbook
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from bot.engine import Engine
from bot.messages import Location, Reply
from bot.outbox import replies_of
from handlers.accounts import link_codes
from handlers.accounts.registry import add_company, add_person
from bot.services import Services
from bot.storage.audit import verify_chain
from bot.storage.models import AuditEvent, ChannelIdentity, OutboundMessage, StaffNotification, utcnow
from handlers.accounts.models import LinkCode
from handlers.visits.models import Visit
from handlers.visits.report import build, to_xlsx
from handlers.visits.rules import rules_for
from handlers.visits.service import plan_visit
from tests.conftest import send

JST = timezone(timedelta(hours=9))
DAY = date(2026, 11, 20)
TOKYO_STATION = Location(lat=35.681236, lon=139.767125)
NEAR = Location(lat=35.6820, lon=139.7680)  # ~120 m away
OSAKA = Location(lat=34.702485, lon=135.495951)


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    """A JST wall-clock time as the naive UTC the engine stores."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST).astimezone(UTC).replace(tzinfo=None)


@dataclass
class World:
    services: Services
    engine: Engine
    company_id: int
    expert_id: int
    contact_id: int
    expert_code: str
    contact_code: str

    def send(self, channel: str, user: str, text: str | None = None, *, choice: str | None = None,
             location: Location | None = None, when: datetime | None = None,
             message_id: str | None = None) -> list[Reply]:
        return send(self.engine, text, user=user, channel=channel, choice=choice, location=location,
                    timestamp=when or at(9), platform_message_id=message_id)

    def expert(self, text: str | None = None, **kw: object) -> list[Reply]:
        return self.send("telegram", "tg-expert", text, **kw)  # type: ignore[arg-type]

    def sme(self, text: str | None = None, **kw: object) -> list[Reply]:
        return self.send("line", "U-sme", text, **kw)  # type: ignore[arg-type]

    def plan(self, day: date = DAY, company_id: int | None = None, start: str = "10:00") -> int:
        with self.services.db.session() as session:
            planned = plan_visit(session, rules_for(day), expert_id=self.expert_id,
                                 company_id=company_id or self.company_id, day=day, start=start, end="12:00",
                                 institution="○○商工会議所")
            return planned.visit.id

    def visit(self, visit_id: int) -> Visit:
        with self.services.db.session() as session:
            visit = session.get(Visit, visit_id)
            assert visit is not None
            session.expunge(visit)
            return visit

    def outbox(self, channel: str, user: str) -> list[Reply]:
        with self.services.db.session() as session:
            rows = session.execute(select(OutboundMessage).where(
                OutboundMessage.channel == channel, OutboundMessage.external_user_id == user,
                OutboundMessage.status == "pending").order_by(OutboundMessage.id)).scalars()
            return [reply for row in rows for reply in replies_of(row)]


@pytest.fixture
def world(services: Services) -> World:
    with services.db.session() as session:
        company = add_company(session, "株式会社窓口製作所", corporate_number="7000012050002",
                              address="東京都千代田区丸の内1-9-1", latitude=TOKYO_STATION.lat,
                              longitude=TOKYO_STATION.lon)
        expert = add_person(session, "expert", "山田 太郎", organisation="中小企業診断士")
        contact = add_person(session, "applicant", "窓口 花子", company_id=company.id)
        expert_code = link_codes.issue(session, "link", hours=168, person_id=expert.id)
        contact_code = link_codes.issue(session, "link", hours=168, person_id=contact.id)
        ids = company.id, expert.id, contact.id
    return World(services, Engine(services), *ids, expert_code, contact_code)


def link_both(world: World) -> None:
    assert "山田 太郎様のアカウントとして連携しました" in world.expert(f"/start {world.expert_code.replace('-', '')}")[0].text
    assert "窓口 花子様のアカウントとして連携しました" in world.sme(f"連携 {world.contact_code.lower()}")[0].text


def test_a_whole_visit_across_two_people_and_two_channels(world: World) -> None:
    link_both(world)
    visit_id = world.plan()
    menu = world.expert("メニュー")[0]
    assert {"visits:checkin", "visits:checkout"} <= {o.value for o in menu.options}

    replies = world.expert("/checkin", when=at(9, 55))
    assert [o.value for o in replies[0].options] == [f"visits:in:{visit_id}"]
    assert "11/20 10:00 株式会社窓口製作所" == replies[0].options[0].label
    replies = world.expert(choice=f"visits:in:{visit_id}", when=at(10, 2))
    assert "チェックインしました（10:02）" in replies[0].text and "位置情報を送って" in replies[0].text
    replies = world.expert(location=NEAR, when=at(10, 3))
    assert replies[0].text == "位置情報を記録しました。"

    replies = world.expert("チェックアウト", when=at(12, 10))
    replies = world.expert(choice=f"visits:out:{visit_id}", when=at(12, 10))
    assert "チェックアウトしました（12:10）" in replies[0].text
    replies = world.expert(location=OSAKA, when=at(12, 11))
    assert "1,000m以上離れています" in replies[0].text and "対面で支援した時間" in replies[1].text
    assert "時間として読み取れませんでした" in world.expert("たくさん")[0].text  # not a duration: polite re-ask
    assert "より長い時間" in world.expert("3時間")[0].text  # longer than check-in -> check-out
    replies = world.expert("2時間")
    assert "同行しましたか" in replies[0].text
    replies = world.expert(choice="visits:acc:no")
    assert "同行しなかった理由" in replies[0].text
    replies = world.expert("日程が合わなかったため")
    assert "対面支援 2時間（謝金の対象 2時間、見込み 10,560円）" in replies[0].text
    assert "企業のご担当者（1名）に、訪問内容の確認をお送りしました" in replies[1].text

    # The SME's confirmation request waits for them on LINE (their own channel).
    request = world.outbox("line", "U-sme")
    assert len(request) == 1
    assert "本日10:02-12:10 専門家 山田 太郎様の支援を受けましたか？" in request[0].text
    assert [o.value for o in request[0].options] == [f"visits:confirm:{visit_id}", f"visits:dispute:{visit_id}"]
    assert "確認いただきありがとうございました" in world.sme(choice=f"visits:confirm:{visit_id}", when=at(12, 30))[0].text
    told = world.outbox("telegram", "tg-expert")
    assert told and "株式会社窓口製作所様が11/20の訪問を確認しました。謝金：10,560円" in told[-1].text

    visit = world.visit(visit_id)
    assert visit.status == "confirmed" and visit.confirmation_method == "chat"
    assert (visit.checkin_lat, visit.checkin_lon) == (NEAR.lat, NEAR.lon)
    assert visit.face_to_face_minutes == 120 and visit.accompanied is False
    assert visit.not_accompanied_reason == "日程が合わなかったため"
    assert visit.flags == ["checkout_location_far"] and visit.needs_certificate is False

    with world.services.db.session() as session:
        report = build(session, "2026-11")
        assert verify_chain(session).ok
    expert_row = next(r for r in report.rows if r.group == "専門家")
    assert (expert_row.month.confirmed, expert_row.month.minutes, expert_row.month.fee_yen) == (1, 120, 10560)
    assert expert_row.cumulative.fee_yen == 10560 and expert_row.month.flagged == 1
    institution_row = next(r for r in report.rows if r.group == "支援機関")
    assert institution_row.label == "○○商工会議所" and institution_row.month.visits == 1


def test_redelivered_or_repeated_check_in_is_recorded_once(world: World) -> None:
    link_both(world)
    visit_id = world.plan()
    first = world.expert(choice=f"visits:in:{visit_id}", when=at(10, 0), message_id="tg-100")
    again = world.expert(choice=f"visits:in:{visit_id}", when=at(10, 0), message_id="tg-100")
    assert [r.text for r in first] == [r.text for r in again]
    repeated = world.expert(choice=f"visits:in:{visit_id}", when=at(10, 1), message_id="tg-101")
    assert "既にチェックイン済み" in repeated[0].text
    assert world.visit(visit_id).checkin_at == at(10, 0)
    with world.services.db.session() as session:
        checkins = session.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "visit.checked_in")).scalar_one()
    assert checkins == 1
    # The same for check-out redelivered by the platform.
    out1 = world.expert(choice=f"visits:out:{visit_id}", when=at(12, 0), message_id="tg-102")
    out2 = world.expert(choice=f"visits:out:{visit_id}", when=at(12, 0), message_id="tg-102")
    assert [r.text for r in out1] == [r.text for r in out2]
    assert world.visit(visit_id).checkout_at == at(12, 0)


def test_only_linked_experts_check_in_and_only_company_contacts_confirm(world: World) -> None:
    visit_id = world.plan()
    assert "連携した方だけ" in world.expert("/checkin")[0].text  # not linked yet
    assert "連携した方だけ" in world.send("web", "stranger", "チェックイン")[0].text
    link_both(world)
    # A linked SME contact cannot check in; a stranger cannot confirm.
    assert "連携した方だけ" in world.sme("チェックイン")[0].text
    world.expert(choice=f"visits:in:{visit_id}", when=at(10))
    world.expert(choice=f"visits:out:{visit_id}", when=at(12))
    world.expert(choice="visits:noloc")
    world.expert("電波が届かない")
    world.expert("2時間")
    world.expert("はい")
    world.expert("2時間")
    assert "この訪問の確認はできません" in world.send("web", "stranger", choice=f"visits:confirm:{visit_id}")[0].text
    assert world.visit(visit_id).status == "checked_out"
    assert world.visit(visit_id).checkout_no_location_reason == "電波が届かない"
    assert "checkout_location_missing" in world.visit(visit_id).flags


def test_forged_expired_and_reused_link_codes_are_refused(world: World) -> None:
    assert "コードが正しくありません" in world.expert("ABCD-2345")[0].text
    assert "コードが正しくありません" in world.expert("ABCD-1234")[0].text  # not even in the alphabet
    link_both(world)
    # Reused by another account: refused, and the first link stays.
    assert "既に使われています" in world.send("web", "someone-else", world.expert_code)[0].text
    with world.services.db.session() as session:
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.external_user_id == "someone-else")).scalar_one()
        assert identity.verified is False and identity.person_id != world.expert_id
        expired = link_codes.issue(session, "link", hours=1, person_id=world.expert_id)
        session.execute(update(LinkCode).where(LinkCode.used_at.is_(None))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert "有効期限が切れています" in world.send("web", "late", expired)[0].text
    # Guessing is limited: after 5 wrong codes within the hour even a valid code is refused.
    with world.services.db.session() as session:
        fresh = link_codes.issue(session, "link", hours=1, person_id=world.expert_id)
    for guess in ["AAAA-AAAA", "BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "EEEE-EEEE"]:
        world.send("web", "guesser", guess)
    assert "しばらく受け付けを停止" in world.send("web", "guesser", fresh)[0].text


def test_sme_without_a_linked_account_confirms_with_the_experts_one_time_code(world: World) -> None:
    world.expert(f"/start {world.expert_code}")  # only the expert is linked
    visit_id = world.plan()
    world.expert(choice=f"visits:in:{visit_id}", when=at(10))
    world.expert(location=TOKYO_STATION, when=at(10))
    world.expert(choice=f"visits:out:{visit_id}", when=at(11, 45))
    world.expert(location=TOKYO_STATION, when=at(11, 45))
    world.expert("90分")
    world.expert(choice="visits:acc:yes")
    replies = world.expert("1時間")
    code_reply = replies[-1]
    assert "確認コードを発行しました" in code_reply.text
    code = code_reply.text.split("：")[1].split("\n")[0]
    assert code_reply.links[0].url.endswith(f"/?code={code}")

    # The SME opens the link on their phone (the web chat sends the code).
    replies = world.send("web", "sme-phone", code, when=at(11, 50))
    assert "専門家 山田 太郎様の支援を受けましたか" in replies[0].text
    assert "お名前" in world.send("web", "sme-phone", choice=f"visits:confirm:{visit_id}", when=at(11, 51))[0].text
    assert "確認いただきありがとうございました" in world.send("web", "sme-phone", "鈴木 一郎", when=at(11, 52))[0].text
    visit = world.visit(visit_id)
    assert visit.status == "confirmed" and visit.confirmation_method == "code"
    assert visit.accompanied is True and visit.accompanied_minutes == 60
    assert "既に使われています" in world.send("web", "sme-other", code)[0].text


def test_dispute_needs_the_certificate_tells_the_expert_and_staff(world: World) -> None:
    link_both(world)
    visit_id = world.plan()
    world.expert(choice=f"visits:in:{visit_id}", when=at(10))
    world.expert(location=NEAR, when=at(10))
    world.expert(choice=f"visits:out:{visit_id}", when=at(12))
    world.expert(location=NEAR, when=at(12))
    world.expert("2時間")
    world.expert("いいえ")
    world.expert("急な欠席")
    assert "どの点が異なるか" in world.sme(choice=f"visits:dispute:{visit_id}")[0].text
    assert "事務局から確認のご連絡" in world.sme("実際は1時間でした")[0].text
    visit = world.visit(visit_id)
    assert visit.status == "disputed" and visit.needs_certificate and visit.dispute_note == "実際は1時間でした"
    assert "支援実施証明兼再発防止誓約書" in world.outbox("telegram", "tg-expert")[-1].text
    with world.services.db.session() as session:
        assert session.execute(select(StaffNotification.kind)).scalars().all() == ["visit.disputed"]
    with world.services.db.session() as session:
        report = build(session, "2026-11")
    assert next(r for r in report.rows if r.group == "専門家").month.fee_yen == 0


def test_checkout_without_checkin_and_the_daily_sweep_require_the_certificate(world: World) -> None:
    link_both(world)
    forgot = world.plan(start="10:00")
    replies = world.expert("チェックアウト", when=at(12))
    assert f"visits:out:{forgot}" in [o.value for o in replies[0].options]
    replies = world.expert(choice=f"visits:out:{forgot}", when=at(12))
    assert "チェックインの記録がありません" in replies[0].text and "支援実施証明兼再発防止誓約書" in replies[0].text
    assert world.visit(forgot).needs_certificate

    never = world.plan(start="15:00")
    from handlers.visits.service import sweep

    with world.services.db.session() as session:
        marked = sweep(session, DAY)
    assert [v.id for v in marked] == [never]
    visit = world.visit(never)
    assert visit.needs_certificate and {"checkin_missing", "checkout_missing", "confirmation_missing"} <= set(visit.flags)


def test_yearly_limit_warns_at_planning_and_check_in_across_march_and_april(world: World) -> None:
    link_both(world)
    ids = [world.plan(day=d) for d in (date(2026, 4, 1), date(2026, 10, 1), date(2027, 3, 30))]
    assert all("over_yearly_limit" not in world.visit(i).flags for i in ids)  # the third is still fine
    fourth = world.plan(day=date(2027, 3, 31))
    assert world.visit(fourth).flags == ["over_yearly_limit"]
    april = world.plan(day=date(2027, 4, 1))  # a new fiscal year: first dispatch again
    assert world.visit(april).flags == []
    replies = world.expert(choice=f"visits:in:{fourth}", when=at(10, day=date(2027, 3, 31)))
    assert "今年度4回目です（原則3回まで）" in replies[0].text
    # Checking in on another day than planned is flagged too.
    replies = world.expert(choice=f"visits:in:{april}", when=at(10, day=date(2027, 4, 2)))
    assert "予定日（04/01）と異なる日のチェックイン" in replies[0].text


def use_same_database(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads settings from the environment: point it at the test's database."""
    from bot.settings import get_settings

    if services.settings.database.url:
        monkeypatch.setenv("MADOGUCHI_DATABASE__URL", services.settings.database.url)
    get_settings.cache_clear()


def test_monthly_report_cli_is_reproducible_and_counts_the_daily_cap(world: World,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from integrations.cli_root import app as cli_app

    use_same_database(world.services, monkeypatch)
    link_both(world)
    long_visit, short_visit = world.plan(start="09:00"), world.plan(start="16:00")
    for visit_id, start, end, minutes in ((long_visit, at(9), at(15, 30), "6時間29分"),
                                          (short_visit, at(16), at(17), "1時間")):
        world.expert(choice=f"visits:in:{visit_id}", when=start)
        world.expert(location=NEAR, when=start)
        world.expert(choice=f"visits:out:{visit_id}", when=end)
        world.expert(location=NEAR, when=end)
        world.expert(minutes)
        world.expert("はい")
        world.expert("30分")
        world.sme(choice=f"visits:confirm:{visit_id}", when=end)
    october = world.plan(day=date(2026, 10, 5))
    assert world.visit(october).status == "planned"

    runner = CliRunner()
    first = runner.invoke(cli_app, ["visits", "report", "--month", "2026-11", "--format", "xlsx", "--out", "r1.xlsx"])
    second = runner.invoke(cli_app, ["visits", "report", "--month", "2026-11", "--format", "xlsx", "--out", "r2.xlsx"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    sheets = [load_workbook(name) for name in ("r1.xlsx", "r2.xlsx")]
    values = [[[c.value for c in row] for ws in book.worksheets for row in ws.iter_rows()] for book in sheets]
    assert values[0] == values[1]
    summary = sheets[0]["集計"]
    header = [c.value for c in summary[2]]
    expert = next(dict(zip(header, [c.value for c in row], strict=True)) for row in summary.iter_rows(min_row=3)
                  if row[0].value == "専門家")
    # 6h29m -> 6h billable = 31,680 (the cap); the 1h visit the same day gets nothing more.
    assert expert["当月 謝金(円)"] == 31680 and expert["当月 確認済"] == 2
    assert expert["当月 件数"] == 2 and expert["累計 件数"] == 3  # October's planned visit counts cumulatively
    details = sheets[0]["明細"]
    fees = [row[9].value for row in details.iter_rows(min_row=2)]
    assert fees == [31680, 0]
    csv_result = runner.invoke(cli_app, ["visits", "report", "--month", "2026-11", "--format", "csv"])
    assert "専門家,山田 太郎,2,2,7.48,31680" in csv_result.stdout_bytes.decode("utf-8-sig")
    bad = runner.invoke(cli_app, ["visits", "report", "--month", "2026-13"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    assert to_xlsx(build_report(world, "2026-10"))[:2] == b"PK"


def build_report(world: World, month: str):  # type: ignore[no-untyped-def]
    with world.services.db.session() as session:
        return build(session, month)


def test_staff_api_lists_visits_with_fees(world: World) -> None:
    import httpx

    from integrations.web import create_app
    from tests.conftest import LiveServer

    link_both(world)
    visit_id = world.plan()
    world.services.settings.staff.api_token = SecretStr("tok-visits-0123456789")
    with LiveServer(create_app(world.services)) as server:
        assert httpx.get(f"{server.url}/api/visits").status_code == 401
        body = httpx.get(f"{server.url}/api/visits", params={"month": "2026-11"},
                         headers={"Authorization": "Bearer tok-visits-0123456789"}).json()
    assert body["total"] == 1 and body["items"][0]["id"] == visit_id
    assert body["items"][0]["company_name"] == "株式会社窓口製作所" and body["items"][0]["fee_yen"] == 0


def test_people_and_visits_cli_register_and_plan(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from integrations.cli_root import app as cli_app

    use_same_database(services, monkeypatch)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["companies", "add", "--name", "有限会社テスト", "--lat", "35.0", "--lon", "135.0"])
    assert result.exit_code == 0 and "企業 ID 1" in result.output, result.output
    result = runner.invoke(cli_app, ["people", "add", "--role", "expert", "--name", "佐藤 一郎"])
    assert result.exit_code == 0 and "連携コード" in result.output
    code = result.output.split("連携コード: ")[1].split("（")[0].strip()
    assert link_codes.canonical(code)
    result = runner.invoke(cli_app, ["people", "add", "--role", "wizard", "--name", "x"])
    assert result.exit_code == 2 and "役割 wizard は使えません" in result.output
    result = runner.invoke(cli_app, ["visits", "add", "--expert", "1", "--company", "1", "--date", "2026-12-01",
                                     "--start", "10:00", "--institution", "商工会"])
    assert result.exit_code == 0 and "今年度 1 回目" in result.output, result.output
    result = runner.invoke(cli_app, ["visits", "add", "--expert", "1", "--company", "99", "--date", "2026-12-01"])
    assert result.exit_code == 2 and "登録されていません" in result.output


QUESTION = "謝金はいくらですか？"


def asks_again(replies: list[Reply], key: str, options: set[str] | None = None) -> bool:
    """The last reply asks the step's own question again (with its buttons, if it has any)."""
    from bot.i18n import t

    last = replies[-1]
    return last.text == t(key, "ja") and (options is None or {o.value for o in last.options} == options)


def test_every_visits_step_asks_its_question_again_after_a_mid_flow_question(world: World) -> None:
    """Issue 19: the re-prompt table covered 5 of 10 steps (after a question at code_confirm the buttons
    never came back); the steps are now one table, and every row re-prompts."""
    # Only the expert links: the company's contact stays unlinked, so check-out issues a one-time code.
    assert "山田 太郎様のアカウントとして連携しました" in world.expert(f"/start {world.expert_code.replace('-', '')}")[0].text
    first, second = world.plan(start="10:00"), world.plan(start="14:00")

    world.expert(choice=f"visits:in:{first}", when=at(10, 0))  # checkin_location
    assert asks_again(world.expert(QUESTION, when=at(10, 1)), "visits_send_location", {"visits:noloc"})
    world.expert(choice="visits:noloc", when=at(10, 1))  # checkin_noloc_reason
    assert asks_again(world.expert(QUESTION, when=at(10, 2)), "visits_ask_no_location_reason")
    assert "理由を記録しました" in world.expert("電波が届かない", when=at(10, 2))[0].text

    world.expert(choice=f"visits:out:{first}", when=at(12, 10))  # checkout_location
    assert asks_again(world.expert(QUESTION, when=at(12, 10)), "visits_send_location", {"visits:noloc"})
    world.expert(choice="visits:noloc", when=at(12, 11))  # checkout_noloc_reason
    assert asks_again(world.expert(QUESTION, when=at(12, 11)), "visits_ask_no_location_reason")
    world.expert("屋内で電波がない", when=at(12, 11))  # minutes
    assert asks_again(world.expert(QUESTION, when=at(12, 12)), "visits_ask_minutes")
    world.expert("2時間", when=at(12, 12))  # accompanied
    assert asks_again(world.expert(QUESTION, when=at(12, 12)), "visits_ask_accompanied",
                      {"visits:acc:yes", "visits:acc:no"})
    world.expert(choice="visits:acc:yes", when=at(12, 13))  # accompanied_minutes
    assert asks_again(world.expert(QUESTION, when=at(12, 13)), "visits_ask_accompanied_minutes")
    replies = world.expert("1時間", when=at(12, 13))
    code = replies[-1].text.split("：")[1].split("\n")[0]

    world.expert(choice=f"visits:in:{second}", when=at(14, 0))
    world.expert(location=TOKYO_STATION, when=at(14, 0))
    world.expert(choice=f"visits:out:{second}", when=at(15, 0))
    world.expert(location=TOKYO_STATION, when=at(15, 0))
    world.expert("30分", when=at(15, 1))
    world.expert(choice="visits:acc:no", when=at(15, 1))  # not_accompanied_reason
    assert asks_again(world.expert(QUESTION, when=at(15, 1)), "visits_ask_not_accompanied_reason")
    assert "対面支援 30分" in world.expert("日程が合わなかった", when=at(15, 2))[0].text

    world.send("web", "sme-phone", code, when=at(15, 5))  # code_confirm: the confirm/dispute buttons
    replies = world.send("web", "sme-phone", QUESTION, when=at(15, 6))
    assert {o.value for o in replies[-1].options} == {f"visits:confirm:{first}", f"visits:dispute:{first}"}
    world.send("web", "sme-phone", choice=f"visits:confirm:{first}", when=at(15, 6))  # code_name
    assert asks_again(world.send("web", "sme-phone", QUESTION, when=at(15, 6)), "visits_ask_confirmer_name")
    world.send("web", "sme-phone", "中止", when=at(15, 7))
    world.send("web", "sme-phone", code, when=at(15, 7))
    world.send("web", "sme-phone", choice=f"visits:dispute:{first}", when=at(15, 7))  # dispute_note
    assert asks_again(world.send("web", "sme-phone", QUESTION, when=at(15, 8)), "visits_ask_dispute_note")


def test_the_check_out_estimate_applies_the_daily_cap_across_the_experts_visits(world: World) -> None:
    """Issue 19: the estimate in the chat capped each visit alone (two fee rules); it now is the service's
    rule, so the expert's earlier visit that day uses up the daily cap first."""
    link_both(world)
    first, second = world.plan(start="09:00"), world.plan(start="15:00")
    for visit_id, start, end, minutes in ((first, 9, 14, "5時間"), (second, 15, 17, "2時間")):
        world.expert(choice=f"visits:in:{visit_id}", when=at(start))
        world.expert(location=TOKYO_STATION, when=at(start))
        world.expert(choice=f"visits:out:{visit_id}", when=at(end))
        world.expert(location=TOKYO_STATION, when=at(end))
        world.expert(minutes, when=at(end))
        replies = world.expert(choice="visits:acc:no", when=at(end))
        replies = world.expert("日程が合わなかった", when=at(end, 1))
        if visit_id == first:
            assert "見込み 26,400円" in replies[0].text
            world.sme(choice=f"visits:confirm:{first}", when=at(end, 5))
    # 31,680円 a day: 26,400円 went to the first visit, 5,280円 are left for the second (not 10,560円).
    assert "対面支援 2時間（謝金の対象 2時間、見込み 5,280円）" in replies[0].text
