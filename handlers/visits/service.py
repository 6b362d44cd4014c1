"""Visit state changes and rule checks, shared by the chat handler, the CLI and the staff API.

planned -> checked_in -> checked_out -> confirmed | disputed (cancelled by staff).
Each change locks the visit row, so a redelivered or doubled message can
never check in twice; each is audited. Rule findings are appended to
`visit.flags` as stable codes that reports count and the chat explains.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.jst import jst_date
from bot.storage import audit
from bot.storage.models import ChannelIdentity, Company, Conversation, Message, Person, Role, utcnow
from handlers.visits.models import Visit, VisitConfirmationEvidence
from handlers.visits.rules import ProgramRules, distance_m, fees_for_day, fiscal_year, fiscal_year_start, rules_for
from bot.i18n import add_locale_dir, t
from bot.messages import Reply
from bot.outbox import NoChannel, send_to_person
from bot.jst import JST

if TYPE_CHECKING:
    from bot.services import Services

ACTIVE_STATUSES = ("planned", "checked_in", "checked_out", "confirmed", "disputed")
FLAG_LABELS = {
    "over_yearly_limit": "年度内の派遣回数超過",
    "checkin_date_differs": "チェックイン日が予定日と異なる",
    "checkout_date_differs": "チェックアウト日が予定日と異なる",
    "checkin_location_far": "チェックイン場所が企業の所在地から離れている",
    "checkout_location_far": "チェックアウト場所が企業の所在地から離れている",
    "checkin_location_missing": "チェックイン位置情報なし",
    "checkout_location_missing": "チェックアウト位置情報なし",
    "checkin_missing": "チェックインなし",
    "checkout_missing": "チェックアウトなし",
    "confirmation_missing": "企業確認なし",
    "disputed": "企業が相違ありと回答",
}


class VisitError(ValueError):
    """A step that is not allowed now; `reason` is an i18n key suffix."""
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Planned:
    visit: Visit
    ordinal_in_year: int
    over_limit: bool


def add_flag(visit: Visit, flag: str) -> None:
    if flag not in (visit.flags or []):
        visit.flags = [*(visit.flags or []), flag]


def dispatch_ordinal(session: Session, company_id: int, day: date, visit_id: int | None = None) -> int:
    """Which dispatch of the fiscal year this is for the company (1-based; cancelled ones do not count)."""
    start = fiscal_year_start(fiscal_year(day))
    query = select(func.count()).select_from(Visit).where(
        Visit.company_id == company_id, Visit.status.in_(ACTIVE_STATUSES),
        Visit.planned_date >= start, Visit.planned_date <= day)
    if visit_id is not None:  # visits on the same day count in id order
        query = query.where((Visit.planned_date < day) | (Visit.id <= visit_id))
    return int(session.execute(query).scalar_one()) + (0 if visit_id is not None else 1)


def plan_visit(session: Session, rules: ProgramRules, *, expert_id: int, company_id: int, day: date,
               start: str | None = None, end: str | None = None, institution: str | None = None,
               actor_person_id: int | None = None, program: str | None = None) -> Planned:
    expert = session.get(Person, expert_id)
    if expert is None or expert.role != Role.EXPERT.value:
        raise VisitError("not_an_expert")
    if session.get(Company, company_id) is None:
        raise VisitError("no_such_company")
    ordinal = dispatch_ordinal(session, company_id, day)
    visit = Visit(expert_person_id=expert_id, company_id=company_id, planned_date=day, planned_start=start,
                  planned_end=end, institution=institution, status="planned", flags=[], program=program)
    over = ordinal > rules.max_dispatches_per_fiscal_year
    if over:
        add_flag(visit, "over_yearly_limit")
    session.add(visit)
    session.flush()
    audit.record(session, "visit.planned", actor_person_id=actor_person_id, subject_type="visit",
                 subject_id=visit.id, data={"ordinal_in_year": ordinal, "over_limit": over, "program": program})
    return Planned(visit, ordinal, over)


def lock(session: Session, visit_id: int) -> Visit | None:
    return session.execute(select(Visit).where(Visit.id == visit_id).with_for_update()).scalar_one_or_none()


def expert_visits(session: Session, expert_id: int, statuses: tuple[str, ...], around: date,
                  days: int = 0) -> list[Visit]:
    """The expert's visits in `statuses` planned within ±`days` of `around`, by date and time."""
    query = select(Visit).where(
        Visit.expert_person_id == expert_id, Visit.status.in_(statuses),
        Visit.planned_date >= around - timedelta(days=days), Visit.planned_date <= around + timedelta(days=days))
    return sorted(session.execute(query).scalars(), key=lambda v: (v.planned_date, v.planned_start or "", v.id))


def check_in(session: Session, rules: ProgramRules, visit: Visit, at: datetime, actor_person_id: int) -> list[str]:
    """Record the check-in time; returns the new flags (date differs, over the yearly limit)."""
    if visit.status != "planned":
        raise VisitError("already_checked_in" if visit.checkin_at else "not_plannable")
    visit.checkin_at = at
    visit.status = "checked_in"
    new: list[str] = []
    if jst_date(at) != visit.planned_date:
        new.append("checkin_date_differs")
    if dispatch_ordinal(session, visit.company_id, visit.planned_date, visit.id) > rules.max_dispatches_per_fiscal_year:
        new.append("over_yearly_limit")
    for flag in new:
        add_flag(visit, flag)
    audit.record(session, "visit.checked_in", actor_person_id=actor_person_id, subject_type="visit",
                 subject_id=visit.id, data={"flags": new})
    return new


def check_out(session: Session, visit: Visit, at: datetime, actor_person_id: int) -> list[str]:
    """Record the check-out time. Without a check-in the visit needs the paper certificate."""
    if visit.status not in ("planned", "checked_in"):
        raise VisitError("already_checked_out")
    new: list[str] = []
    if visit.checkin_at is None:
        new.append("checkin_missing")
        visit.needs_certificate = True
    visit.checkout_at = at
    visit.status = "checked_out"
    if jst_date(at) != visit.planned_date:
        new.append("checkout_date_differs")
    for flag in new:
        add_flag(visit, flag)
    audit.record(session, "visit.checked_out", actor_person_id=actor_person_id, subject_type="visit",
                 subject_id=visit.id, data={"flags": new})
    return new


def record_location(session: Session, rules: ProgramRules, visit: Visit, which: str, lat: float | None,
                    lon: float | None, missing_reason: str | None = None) -> list[str]:
    """Store the check-in/out location (or why there is none) and compare it with the company's coordinates."""
    new: list[str] = []
    if lat is None or lon is None:
        setattr(visit, f"{which}_no_location_reason", (missing_reason or "")[:500] or None)
        new.append(f"{which}_location_missing")
    else:
        setattr(visit, f"{which}_lat", lat)
        setattr(visit, f"{which}_lon", lon)
        company = session.get(Company, visit.company_id)
        if company and company.latitude is not None and company.longitude is not None:
            if distance_m(lat, lon, company.latitude, company.longitude) > rules.location_tolerance_m:
                new.append(f"{which}_location_far")
    for flag in new:
        add_flag(visit, flag)
    return new


def record_support(visit: Visit, minutes: int, accompanied: bool, accompanied_minutes: int | None,
                   not_accompanied_reason: str | None) -> None:
    visit.face_to_face_minutes = minutes
    visit.accompanied = accompanied
    visit.accompanied_minutes = accompanied_minutes if accompanied else None
    visit.not_accompanied_reason = None if accompanied else (not_accompanied_reason or "")[:500]


def company_contacts(session: Session, company_id: int) -> list[Person]:
    """People registered for the company with at least one linked (verified) chat account."""
    query = (select(Person).join(ChannelIdentity, ChannelIdentity.person_id == Person.id)
             .where(Person.company_id == company_id, ChannelIdentity.verified.is_(True)).distinct())
    return list(session.execute(query).scalars())


def may_confirm(session: Session, person: Person, visit: Visit) -> bool:
    return person.company_id == visit.company_id and any(
        identity.verified for identity in session.execute(
            select(ChannelIdentity).where(ChannelIdentity.person_id == person.id)).scalars())


def confirm(session: Session, visit: Visit, person_id: int, method: str) -> None:
    if visit.status == "confirmed":
        raise VisitError("already_confirmed")
    if visit.status != "checked_out":
        raise VisitError("not_checked_out")
    visit.status = "confirmed"
    visit.confirmed_at = utcnow()
    visit.confirmed_by_person_id = person_id
    visit.confirmation_method = method
    audit.record(session, "visit.confirmed", actor_person_id=person_id, subject_type="visit", subject_id=visit.id,
                 data={"method": method})


#: How far back the expert's own web addresses and browsers are compared with a code confirmation.
EXPERT_CLIENT_LOOKBACK = timedelta(days=30)


def expert_clients(session: Session, expert_person_id: int) -> tuple[set[str], set[str]]:
    """Addresses and browsers the expert's own web chat used recently."""
    payloads = session.execute(
        select(Message.payload).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.person_id == expert_person_id, Message.direction == "in", Message.channel == "web",
               Message.created_at >= utcnow() - EXPERT_CLIENT_LOOKBACK)
        .order_by(Message.id.desc()).limit(500)).scalars()
    ips: set[str] = set()
    agents: set[str] = set()
    for payload in payloads:
        client = (payload or {}).get("client") or {}
        if client.get("ip"):
            ips.add(client["ip"])
        if client.get("user_agent"):
            agents.add(client["user_agent"])
    return ips, agents


def record_code_confirmation(session: Session, visit: Visit, person_id: int, typed_name: str,
                             client: dict[str, str]) -> VisitConfirmationEvidence:
    """Keep who confirmed with a code (typed name, address, browser); flag it when the address or the
    browser is one the expert used, so the secretariat looks at it."""
    ips, agents = expert_clients(session, visit.expert_person_id)
    reasons = []
    if client.get("ip") and client["ip"] in ips:
        reasons.append("same network as the expert")
    if client.get("user_agent") and client["user_agent"] in agents:
        reasons.append("same browser as the expert")
    evidence = VisitConfirmationEvidence(visit_id=visit.id, person_id=person_id, typed_name=typed_name[:200],
                                         client_ip=client.get("ip") or None,
                                         user_agent=(client.get("user_agent") or "")[:300] or None,
                                         flagged=bool(reasons), flag_reason="; ".join(reasons) or None)
    session.add(evidence)
    if reasons:
        add_flag(visit, "confirmation_from_expert_side")
    session.flush()
    audit.record(session, "visit.confirmation_evidence", actor_person_id=person_id, subject_type="visit",
                 subject_id=visit.id, data={"flagged": bool(reasons), "reasons": reasons})
    return evidence


def dispute(session: Session, visit: Visit, person_id: int, note: str | None) -> None:
    if visit.status not in ("checked_out", "disputed"):
        raise VisitError("not_checked_out")
    visit.status = "disputed"
    visit.dispute_note = (note or "")[:2000] or None
    visit.needs_certificate = True
    add_flag(visit, "disputed")
    audit.record(session, "visit.disputed", actor_person_id=person_id, subject_type="visit", subject_id=visit.id)


#: Visits whose fee counts: confirmed ones (a fee is paid only after the SME confirmed).
PAID = ("confirmed",)
#: At check-out, before the SME confirms: the visits of the day expected to be paid.
EXPECTED = ("checked_out", "confirmed")


def visit_fees(visits: list[Visit], rules_file: Path | None = None, counted: tuple[str, ...] = PAID) -> dict[int, int]:
    """The one fee rule: fee per counted visit, each expert's daily cap applied across that day's counted
    visits (earlier visits use it first), with the rules of that day's fiscal year."""
    by_day: dict[tuple[int, date], list[Visit]] = defaultdict(list)
    for visit in visits:
        if visit.status in counted and visit.face_to_face_minutes is not None:
            by_day[(visit.expert_person_id, visit.planned_date)].append(visit)
    fees: dict[int, int] = {}
    for (_, day), day_visits in by_day.items():
        fees.update(fees_for_day([(v.id, v.face_to_face_minutes or 0) for v in day_visits], rules_for(day, rules_file)))
    return fees


def fees_with_same_day(session: Session, visits: list[Visit], rules_file: Path | None = None,
                       counted: tuple[str, ...] = PAID) -> dict[int, int]:
    """Fees of `visits`, each sharing its expert's daily cap with all their counted visits that day."""
    if not visits:
        return {}
    same_days = list(session.execute(select(Visit).where(
        Visit.status.in_(counted), Visit.planned_date.in_({v.planned_date for v in visits}),
        Visit.expert_person_id.in_({v.expert_person_id for v in visits})).order_by(Visit.id)).scalars())
    return visit_fees(same_days, rules_file, counted)


def visit_fee(session: Session, visit: Visit, rules_file: Path | None = None) -> int:
    """The fee of one confirmed visit, after the daily cap shared with the expert's other visits that day."""
    return fees_with_same_day(session, [visit], rules_file).get(visit.id, 0)


def estimated_fee(session: Session, visit: Visit, rules_file: Path | None = None) -> int:
    """The fee a checked-out visit is expected to earn once confirmed: the same rule, counting the
    expert's checked-out and confirmed visits of that day against the daily cap."""
    session.flush()
    return fees_with_same_day(session, [visit], rules_file, EXPECTED).get(visit.id, 0)


def sweep(session: Session, through: date) -> list[Visit]:
    """Visits planned on or before `through` with a step missing: mark them as needing the certificate.

    Returns the visits newly marked, so the caller can tell each expert.
    """
    marked: list[Visit] = []
    query = select(Visit).where(Visit.planned_date <= through,
                                Visit.status.in_(("planned", "checked_in", "checked_out"))).with_for_update()
    for visit in session.execute(query).scalars():
        missing = []
        if visit.checkin_at is None:
            missing.append("checkin_missing")
        if visit.checkout_at is None:
            missing.append("checkout_missing")
        missing.append("confirmation_missing")
        for flag in missing:
            add_flag(visit, flag)
        if not visit.needs_certificate:
            visit.needs_certificate = True
            marked.append(visit)
            audit.record(session, "visit.needs_certificate", subject_type="visit", subject_id=visit.id,
                         data={"missing": missing})
    return marked


def sweep_and_notify(session: Session, through: date) -> list[Visit]:
    """`sweep`, then tell each expert whose visit now needs the paper certificate (on a linked channel)."""
    add_locale_dir(Path(__file__).resolve().parent / "locales")
    marked = sweep(session, through)
    for visit in marked:
        text = f"{visit.planned_date:%m/%d} {visit.company.name}: " + t("visits_needs_certificate",
                                                                          visit.expert.locale or "ja")
        try:
            send_to_person(session, visit.expert_person_id, [Reply(text=text)], verified_only=True,
                           program=visit.program)
        except NoChannel:
            pass
    return marked


def nightly_sweep(services: Services) -> list[Visit]:
    """The scheduled task: close every day up to yesterday (JST)."""
    with services.db.session() as session:
        return sweep_and_notify(session, datetime.now(JST).date() - timedelta(days=1))
