"""The hearing sheet's staff API: `GET /api/hearings[/{id}]` (token scope `hearings:read`).

Declared by the capability (`HEARING.routes`) and mounted by the web app in the capability order. Every read is
recorded in the audit trail, because these responses hold companies' contact details; a token sees only its
programs' responses (another program's response does not exist to it: 404).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from bot.jst import to_jst
from bot.programs import catalog_for
from bot.security.api_auth import require_scope, services_of, token_programs, visible_or_404
from bot.storage import audit
from handlers.hearing import reference_number
from handlers.hearing.export import response_document, select_responses
from handlers.hearing.models import FormResponse
from handlers.hearing.schema import catalog

router = APIRouter(prefix="/api", tags=["staff"])
HearingReader = Annotated[str, Depends(require_scope("hearings:read"))]


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
    services = services_of(request)
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
    services = services_of(request)
    with services.db.session() as session:
        response = visible_or_404(request, session, FormResponse, response_id, "その回答はありません。",
                                  "No such response.")
        audit.record(session, "hearing.viewed", subject_type="form_response", subject_id=response.id,
                     data={"actor": actor})
        return HearingDetail.model_validate(response_document(catalog(services), response))
