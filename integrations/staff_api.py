"""The staff API: what the secretariat reads from madoguchi (hearing-sheet responses first).

Every route depends on `require_scope`; reads are recorded in the audit
trail, because these responses hold companies' contact details.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from handlers.hearing import reference_number
from handlers.hearing.export import response_document, select_responses
from handlers.hearing.schema import catalog
from bot.jst import to_jst
from bot.services import Services
from bot.storage import audit
from handlers.hearing.models import FormResponse
from bot.programs import catalog_for, may_see, program_in
from integrations.staff_auth import require_scope, token_programs

router = APIRouter(prefix="/api", tags=["staff"])
HearingReader = Annotated[str, Depends(require_scope("hearings:read"))]
VisitReader = Annotated[str, Depends(require_scope("visits:read"))]


class HearingBase(BaseModel):
    id: int
    number: str
    form_id: str
    form_version: int
    status: str
    channel: str
    started_at: str | None
    submitted_at: str | None


class HearingSummary(HearingBase):
    company_name: str | None
    answered: int


class HearingList(BaseModel):
    total: int
    items: list[HearingSummary]


class HearingAnswer(BaseModel):
    id: str
    label: str
    value: Any
    display: Any


class HearingDetail(HearingBase):
    person_id: int
    answers: list[HearingAnswer]


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _summary(response: FormResponse) -> HearingSummary:
    started, submitted = to_jst(response.started_at), to_jst(response.submitted_at)
    company = response.answers.get("company_name")
    return HearingSummary(
        id=response.id, number=reference_number(response.id), form_id=response.form_id,
        form_version=response.form_version, status=response.status, channel=response.channel,
        company_name=str(company) if company else None, answered=len(response.answers),
        started_at=started.isoformat() if started else None,
        submitted_at=submitted.isoformat() if submitted else None,
    )


@router.get("/hearings", response_model=HearingList)
def list_hearings(
    request: Request,
    actor: HearingReader,
    form: str | None = Query(default=None, description="フォームID（既定: 各事業のヒアリングシート）"),
    status: Literal["submitted", "in_progress", "abandoned", "all"] = "submitted",
    since: date | None = Query(default=None, description="この日（日本時間）以降"),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> HearingList:
    """Hearing-sheet responses, newest first (staff only): of `form`, or by default each of the token's
    programs' responses to that program's own hearing form."""
    services = _services(request)
    catalog, allowed = catalog_for(services), token_programs(request)
    with services.db.session() as session:
        responses = select_responses(session, form, since, None if status == "all" else status,
                                     catalog=catalog, programs=allowed)
        responses.reverse()
        audit.record(session, "hearing.listed", subject_type="form", subject_id=form or "(each program's form)",
                     data={"actor": actor, "status": status, "count": len(responses)})
        return HearingList(total=len(responses), items=[_summary(r) for r in responses[offset: offset + limit]])


@router.get("/hearings/{response_id}", response_model=HearingDetail,
            responses={404: {"description": "No such response"}})
def get_hearing(request: Request, actor: HearingReader, response_id: int) -> HearingDetail:
    """One response with every answer: raw value and the label shown to people (staff only)."""
    services = _services(request)
    with services.db.session() as session:
        response = session.get(FormResponse, response_id)
        if response is None or not may_see(token_programs(request), response.program, catalog_for(services)):
            raise HTTPException(404, detail={"error": "not_found", "message": "その回答はありません。",
                                             "message_en": "No such response."})
        audit.record(session, "hearing.viewed", subject_type="form_response", subject_id=response.id,
                     data={"actor": actor})
        return HearingDetail.model_validate(response_document(catalog(services), response))



class VisitItem(BaseModel):
    id: int
    planned_date: date
    planned_start: str | None
    planned_end: str | None
    expert_id: int
    expert_name: str | None
    company_id: int
    company_name: str
    institution: str | None
    status: str
    checkin_at: str | None
    checkin_location: list[float] | None
    checkout_at: str | None
    checkout_location: list[float] | None
    face_to_face_minutes: int | None
    accompanied: bool | None
    accompanied_minutes: int | None
    not_accompanied_reason: str | None
    confirmed_at: str | None
    confirmation_method: str | None
    fee_yen: int
    needs_certificate: bool
    flags: list[str]


class VisitList(BaseModel):
    total: int
    items: list[VisitItem]


def _iso(moment: Any) -> str | None:
    aware = to_jst(moment)
    return aware.isoformat() if aware else None


@router.get("/visits", response_model=VisitList)
def list_visits(
    request: Request,
    actor: VisitReader,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")] = None,
    status: str | None = None,
    expert_id: int | None = None,
    company_id: int | None = None,
    limit: int = Query(default=200, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> VisitList:
    """Visits with times, locations, support time, confirmation, fee and rule flags (staff only)."""
    from handlers.visits.models import Visit
    from handlers.visits.report import month_bounds
    from handlers.visits.service import fees_with_same_day

    services = _services(request)
    with services.db.session() as session:
        catalog = catalog_for(services)
        query = select(Visit).where(program_in(Visit.program, token_programs(request), catalog)).order_by(
            Visit.planned_date, Visit.id)
        if month:
            start, end = month_bounds(month)
            query = query.where(Visit.planned_date >= start, Visit.planned_date < end)
        for column, value in ((Visit.status, status), (Visit.expert_person_id, expert_id),
                              (Visit.company_id, company_id)):
            if value is not None:
                query = query.where(column == value)
        visits = list(session.execute(query).scalars())
        fees = fees_with_same_day(session, visits, services.settings.visits.rules_file)
        audit.record(session, "visits.listed", data={"actor": actor, "month": month, "count": len(visits)})
        items = [_visit_item(v, fees) for v in visits[offset: offset + limit]]
        return VisitList(total=len(visits), items=items)


@router.get("/visits/{visit_id}", response_model=VisitItem, responses={404: {"description": "No such visit"}})
def get_visit(request: Request, actor: VisitReader, visit_id: int) -> VisitItem:
    """One visit (staff only; a visit of a program the token is not for does not exist to it)."""
    from handlers.visits.models import Visit
    from handlers.visits.service import visit_fees

    services = _services(request)
    with services.db.session() as session:
        visit = session.get(Visit, visit_id)
        if visit is None or not may_see(token_programs(request), visit.program, catalog_for(services)):
            raise HTTPException(404, detail={"error": "not_found", "message": "その訪問記録はありません。",
                                             "message_en": "No such visit."})
        same_day = list(session.execute(select(Visit).where(
            Visit.status == "confirmed", Visit.planned_date == visit.planned_date,
            Visit.expert_person_id == visit.expert_person_id)).scalars())
        audit.record(session, "visit.viewed", subject_type="visit", subject_id=visit.id, data={"actor": actor})
        return _visit_item(visit, visit_fees(same_day, services.settings.visits.rules_file))


def _visit_item(v: Any, fees: dict[int, int]) -> VisitItem:
    return VisitItem(
            id=v.id, planned_date=v.planned_date, planned_start=v.planned_start, planned_end=v.planned_end,
            expert_id=v.expert_person_id, expert_name=v.expert.display_name, company_id=v.company_id,
            company_name=v.company.name, institution=v.institution, status=v.status,
            checkin_at=_iso(v.checkin_at),
            checkin_location=[v.checkin_lat, v.checkin_lon]
            if v.checkin_lat is not None and v.checkin_lon is not None else None,
            checkout_at=_iso(v.checkout_at),
            checkout_location=[v.checkout_lat, v.checkout_lon]
            if v.checkout_lat is not None and v.checkout_lon is not None else None,
            face_to_face_minutes=v.face_to_face_minutes, accompanied=v.accompanied,
            accompanied_minutes=v.accompanied_minutes, not_accompanied_reason=v.not_accompanied_reason,
            confirmed_at=_iso(v.confirmed_at), confirmation_method=v.confirmation_method,
            fee_yen=fees.get(v.id, 0), needs_certificate=v.needs_certificate, flags=list(v.flags or []),
        )
