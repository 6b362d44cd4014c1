"""The staff API: what the secretariat reads from madoguchi (hearing-sheet responses first).

Every route depends on `require_staff`; reads are recorded in the audit
trail, because these responses hold companies' contact details.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from bot.forms.export import response_document, select_responses, to_jst
from bot.services import Services
from bot.storage import audit
from bot.storage.models import FormResponse
from integrations.staff_auth import require_staff

router = APIRouter(prefix="/api", tags=["staff"])
Staff = Annotated[str, Depends(require_staff)]


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
        id=response.id, number=f"H-{response.id:06d}", form_id=response.form_id,
        form_version=response.form_version, status=response.status, channel=response.channel,
        company_name=str(company) if company else None, answered=len(response.answers),
        started_at=started.isoformat() if started else None,
        submitted_at=submitted.isoformat() if submitted else None,
    )


@router.get("/hearings", response_model=HearingList)
def list_hearings(
    request: Request,
    actor: Staff,
    form: str | None = Query(default=None, description="フォームID（既定: 設定 hearing_form）"),
    status: Literal["submitted", "in_progress", "abandoned", "all"] = "submitted",
    since: date | None = Query(default=None, description="この日（日本時間）以降"),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> HearingList:
    """Hearing-sheet responses, newest first (staff only)."""
    services = _services(request)
    form_id = form or services.settings.hearing_form
    with services.db.session() as session:
        responses = select_responses(session, form_id, since, None if status == "all" else status)
        responses.reverse()
        audit.record(session, "hearing.listed", subject_type="form", subject_id=form_id,
                     data={"actor": actor, "status": status, "count": len(responses)})
        return HearingList(total=len(responses), items=[_summary(r) for r in responses[offset: offset + limit]])


@router.get("/hearings/{response_id}", response_model=HearingDetail,
            responses={404: {"description": "No such response"}})
def get_hearing(request: Request, actor: Staff, response_id: int) -> HearingDetail:
    """One response with every answer: raw value and the label shown to people (staff only)."""
    services = _services(request)
    with services.db.session() as session:
        response = session.get(FormResponse, response_id)
        if response is None:
            raise HTTPException(404, detail={"error": "not_found", "message": "その回答はありません。",
                                             "message_en": "No such response."})
        audit.record(session, "hearing.viewed", subject_type="form_response", subject_id=response.id,
                     data={"actor": actor})
        return HearingDetail.model_validate(response_document(services.forms, response))

