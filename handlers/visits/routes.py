"""Expert visits' staff API: `GET /api/visits[/{id}]` (token scope `visits:read`).

Declared by the capability (`VISITS.routes`) and mounted by the web app in the capability order. Fees follow
the one fee rule of `handlers/visits/service.py` (the daily cap shared across an expert's visits of a day);
a token sees only its programs' visits.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from bot.jst import to_jst
from bot.programs import catalog_for, program_in
from bot.security.api_auth import require_scope, services_of, token_programs, visible_or_404
from bot.storage import audit
from handlers.visits.models import Visit
from handlers.visits.report import month_bounds
from handlers.visits.service import fees_with_same_day

router = APIRouter(prefix="/api", tags=["staff"])
VisitReader = Annotated[str, Depends(require_scope("visits:read"))]


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
    services = services_of(request)
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
    services = services_of(request)
    with services.db.session() as session:
        visit = visible_or_404(request, session, Visit, visit_id, "その訪問記録はありません。", "No such visit.")
        audit.record(session, "visit.viewed", subject_type="visit", subject_id=visit.id, data={"actor": actor})
        return _visit_item(visit, fees_with_same_day(session, [visit], services.settings.visits.rules_file))


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
