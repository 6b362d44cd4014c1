"""The staff inbox: what the console's one screen shows, live updates, saved replies, the dashboard's
charts and the knowledge page.

The queue (left: counts per filter, waiting time, role in Japanese, company, last message), the
conversation (middle: actions at the top, a clean transcript, the reply box at the bottom) and the
context (right: the user, the company, their hearing sheets and visits, the sources the bot showed)
are built here as plain data for the Jinja templates. `GET /staff/events` is a server-sent event
stream that says `changed` whenever any ticket changes, so open pages refresh their parts. Saved
replies are rows of `saved_replies` (handlers/escalation/models.py), managed by staff in the console;
each change is in the audit trail.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from bot import jst
from bot.handler import QUESTION, answer_meta, asked_question
from bot.programs import catalog_for
from bot.services import Services
from bot.storage import audit
from bot.storage.models import (
    AuditEvent,
    Company,
    FaqCandidate,
    KnowledgeChunk,
    KnowledgeSource,
    Message,
    Person,
    utcnow,
)
from handlers.escalation import tickets
from handlers.escalation.models import SavedReply, StaffAccount, Ticket, TicketMessage
from integrations import web_chat
from handlers.hearing.models import FormResponse
from handlers.visits.models import Visit
from sqlalchemy import true
from bot.programs import conversation_in, may_see, program_in, staff_programs
from bot.storage.models import Conversation
from bot.security import throttle
from integrations.http_guards import Verdict
from knowledge.loaders import SUPPORTED_SUFFIXES

router = APIRouter(prefix="/staff", include_in_schema=False)

ROLE_JA = {"applicant": "企業・申請者", "expert": "専門家", "institution": "支援機関", "staff": "事務局",
           "admin": "管理者"}
CHANNEL_JA = {"web": "Webチャット", "line": "LINE", "telegram": "Telegram", "slack": "Slack", "cli": "ターミナル"}
REASON_JA = {"asked_human": "担当者を希望", "not_confident": "自動回答に確信なし", "not_helpful": "回答が役に立たなかった（👎）",
             "rule": "ルールによる引き継ぎ"}
FILTERS = {"open": "未対応", "mine": "自分の担当", "overdue": "期限超過", "active": "対応中すべて", "all": "すべて"}
#: Button values a user pressed, shown as what they read on the button (older tickets stored the value).
CHOICE_LABELS = {"feedback:up": "👍 解決した", "feedback:down": "👎 解決しない", "contact:human": "担当者に問い合わせる",
                 "contact:skip": "このまま担当者につなぐ", "flow:leave": "中断", "hearing:start": "ヒアリングシートに回答する",
                 "hearing:back": "戻る", "hearing:submit": "送信する", "visits:noloc": "位置情報を送れない"}
PAGE_SENT = frozenset({"メニュー"})  # what the old web page sent by itself on every load
EVENTS_POLL_S = 1.0
EVENTS_MAX_S = 300
SMALL_SAMPLE = 20  # below this many, a rate is shown as a rough figure


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


# ------------------------------------------------------------------ queue
def waiting(ticket: Ticket, now: datetime) -> str:
    """How long the user has been waiting for staff (since the ticket, or since their last message)."""
    if ticket.status not in ("open", "claimed"):
        return ""
    minutes = int((now - ticket.created_at).total_seconds() // 60)
    if minutes < 1:
        return "1分未満"
    if minutes < 60:
        return f"{minutes}分"
    if minutes < 24 * 60:
        return f"{minutes // 60}時間{minutes % 60}分"
    return f"{minutes // (24 * 60)}日"


def filtered(query: Any, name: str, me: StaffAccount, catalog: Any = None) -> Any:
    """The queue's filter; with the program catalog, only tickets of the member's programs (admins: all)."""
    if catalog is not None:

        query = query.where(program_in(Ticket.program, staff_programs(me, catalog), catalog))
    if name == "open":
        return query.where(Ticket.status == "open")
    if name == "mine":
        return query.where(Ticket.assignee_id == me.id, Ticket.status.in_(tickets.OPEN_STATUSES))
    if name == "overdue":
        return query.where(Ticket.overdue.is_(True), Ticket.status == "open")
    if name == "all":
        return query
    return query.where(Ticket.status.in_(tickets.OPEN_STATUSES))


def queue_context(session: Any, me: StaffAccount, filter_name: str, catalog: Any = None) -> dict[str, Any]:
    if filter_name not in FILTERS:
        filter_name = "active"
    counts = {name: session.execute(filtered(select(func.count()).select_from(Ticket), name, me, catalog)).scalar_one()
              for name in FILTERS}
    rows = list(session.execute(filtered(select(Ticket), filter_name, me, catalog)
                                .order_by(Ticket.id.desc()).limit(200)).scalars())
    last = {}
    if rows:
        newest = (select(TicketMessage.ticket_id, func.max(TicketMessage.id))
                  .where(TicketMessage.ticket_id.in_([r.id for r in rows])).group_by(TicketMessage.ticket_id))
        ids = [mid for _, mid in session.execute(newest)]
        if ids:
            last = {m.ticket_id: m for m in session.execute(select(TicketMessage).where(TicketMessage.id.in_(ids))).scalars()}
    companies = {c.id: c.name for c in session.execute(select(Company).where(
        Company.id.in_({r.company_id for r in rows if r.company_id}))).scalars()} if rows else {}
    now = utcnow()
    items = []
    for ticket in rows:
        message = last.get(ticket.id)
        items.append({
            "id": ticket.id, "number": tickets.number(ticket.id), "status": ticket.status,
            "overdue": ticket.overdue and ticket.status == "open", "waiting": waiting(ticket, now),
            "role": ROLE_JA.get(ticket.role, ticket.role), "company": companies.get(ticket.company_id or 0, ""),
            "question": ticket.question,
            "last": (("担当者：" if message.author == "staff" else "") + message.text) if message else ticket.question,
            "assignee": ticket.assignee.display_name if ticket.assignee else "",
            "channel": CHANNEL_JA.get(ticket.channel, ticket.channel),
        })
    return {"filter": filter_name, "filters": FILTERS, "counts": counts, "items": items}


# ------------------------------------------------------------------ one ticket
def clean_transcript(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation before the hand-off, without what the page sent by itself and with pressed
    buttons shown as their labels."""
    shown: list[dict[str, Any]] = []
    skip_welcome = False
    for entry in entries:
        text = str(entry.get("text") or "")
        if entry.get("from") == "user" and text in PAGE_SENT:
            skip_welcome = True
            continue
        if skip_welcome and entry.get("from") == "bot" and text.startswith("こんにちは"):
            skip_welcome = False
            continue
        skip_welcome = False
        if entry.get("from") == "user":
            text = CHOICE_LABELS.get(text, text)
            if re.fullmatch(r"[a-z]+:[\w:.-]+", text):  # some other button value: say it was a button
                text = "（ボタンを選択）"
        shown.append({"from": entry.get("from"), "text": text, "at": entry.get("at")})
    return shown


def unique_sources(sources: list[dict[str, Any]]) -> list[dict[str, str]]:
    return web_chat.citations_of({"meta": {"citations": sources}})


def context_of(session: Any, ticket: Ticket) -> dict[str, Any]:
    """The right-hand column: who asked, their company, hearing sheets and visits, the sources shown."""
    person = session.get(Person, ticket.person_id)
    company = session.get(Company, ticket.company_id) if ticket.company_id else None
    hearings = list(session.execute(select(FormResponse).where(FormResponse.person_id == ticket.person_id)
                                    .order_by(FormResponse.id.desc()).limit(5)).scalars())
    visit_filter = Visit.expert_person_id == ticket.person_id
    if company is not None:
        visit_filter = visit_filter | (Visit.company_id == company.id)
    visits = list(session.execute(select(Visit).where(visit_filter).order_by(Visit.planned_date.desc())
                                  .limit(5)).scalars())
    return {
        "person": {"name": (person.display_name if person else None) or "（名前未登録）",
                   "role": ROLE_JA.get(ticket.role, ticket.role), "channel": CHANNEL_JA.get(ticket.channel, ticket.channel)},
        "company": {"name": company.name, "number": company.corporate_number, "address": company.address}
        if company else None,
        "hearings": [{"id": h.id, "form": h.form_id, "status": {"submitted": "提出済み", "in_progress": "回答中",
                                                                   "abandoned": "中断"}.get(h.status, h.status),
                      "company": str((h.answers or {}).get("company_name") or ""),
                      "at": jst_text(h.submitted_at or h.updated_at)} for h in hearings],
        "visits": [{"date": v.planned_date.isoformat(), "status": v.status,
                    "company": v.company.name if v.company else ""} for v in visits],
        "sources": unique_sources(ticket.sources or []),
        "reason": REASON_JA.get(ticket.reason, ticket.reason),
    }


def jst_text(moment: datetime | None) -> str:
    local = jst.to_jst(moment) if moment else None
    return local.strftime("%m/%d %H:%M") if local else ""


def next_ticket(session: Any, me: StaffAccount, after: int, catalog: Any = None) -> int | None:
    """After resolving: the next ticket to work on (mine first, then the oldest unclaimed of my programs)."""
    scope = true()
    if catalog is not None:

        scope = program_in(Ticket.program, staff_programs(me, catalog), catalog)
    for query in (select(Ticket.id).where(Ticket.assignee_id == me.id, Ticket.status.in_(("open", "claimed")),
                                          Ticket.id != after, scope).order_by(Ticket.id),
                  select(Ticket.id).where(Ticket.status == "open", Ticket.assignee_id.is_(None),
                                          Ticket.id != after, scope).order_by(Ticket.id)):
        found = session.execute(query.limit(1)).scalar_one_or_none()
        if found is not None:
            return int(found)
    return None


# ------------------------------------------------------------------ saved replies
def saved_replies(services: Services) -> list[dict[str, str]]:
    """The saved replies (table `saved_replies`), by title."""
    with services.db.session() as session:
        return [{"title": title, "text": text} for title, text in session.execute(
            select(SavedReply.title, SavedReply.text).order_by(SavedReply.title)).all()]


def save_reply(services: Services, me: StaffAccount, title: str, text: str) -> None:
    """Add a saved reply, or replace the text of the one with this title."""
    with services.db.session() as session:
        row = session.execute(select(SavedReply).where(SavedReply.title == title)).scalar_one_or_none()
        if row is None:
            try:
                with session.begin_nested():  # another member saving the same title at once: theirs is updated
                    row = SavedReply(title=title, text=text, created_by=me.id)
                    session.add(row)
            except IntegrityError:
                row = session.execute(select(SavedReply).where(SavedReply.title == title)).scalar_one()
        row.text, row.updated_at = text, utcnow()
        session.flush()
        audit.record(session, "staff.saved_reply_saved", subject_type="saved_reply", subject_id=row.id,
                     data={"by": me.username, "title": title})


def delete_reply(services: Services, me: StaffAccount, title: str) -> None:
    with services.db.session() as session:
        row = session.execute(select(SavedReply).where(SavedReply.title == title)).scalar_one_or_none()
        if row is not None:
            audit.record(session, "staff.saved_reply_deleted", subject_type="saved_reply", subject_id=row.id,
                         data={"by": me.username, "title": title})
            session.delete(row)


# ------------------------------------------------------------------ dashboard charts
@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    day: str


def bar_chart(series: list[tuple[str, int]], width: int = 640, height: int = 180) -> dict[str, Any]:
    """A bar chart as SVG geometry (drawn by the template, no script): one bar per day."""
    top = max([v for _, v in series] + [1])
    step = width / max(len(series), 1)
    bars = []
    for i, (day, value) in enumerate(series):
        h = (height - 40) * value / top  # room above the tallest bar for its value
        bars.append(Bar(x=i * step + step * 0.15, y=height - 20 - h, width=step * 0.7, height=h,
                        label=day[5:].replace("-", "/"), value=value, day=day))
    return {"bars": bars, "width": width, "height": height, "top": top, "total": sum(v for _, v in series)}


def days_back(days: int, now: datetime) -> list[str]:
    today = jst.jst_date(now)
    return [(today - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]


def rate(part: int, whole: int) -> dict[str, Any]:
    return {"percent": round(100 * part / whole) if whole else None, "part": part, "whole": whole,
            "rough": 0 < whole < SMALL_SAMPLE}


def dashboard_context(session: Any, days: int = 14, *, me: StaffAccount | None = None,
                      catalog: Any = None) -> dict[str, Any]:
    """The dashboard's figures; with `me` and the program catalog, only the member's programs (admins: all)."""


    programs = staff_programs(me, catalog) if me is not None and catalog is not None else None
    ticket_scope = program_in(Ticket.program, programs, catalog) if programs is not None else true()
    now = utcnow()
    figures = tickets.dashboard(session, days=days, now=now, programs=programs, catalog=catalog)
    keys = days_back(days, now)
    per_day = dict(figures.tickets_per_day)
    since = now - timedelta(days=days)
    questions_by_day: dict[str, int] = {}
    questions = select(func.min(Message.created_at)).where(Message.handler == "question", Message.created_at >= since)
    if programs is not None:
        questions = questions.join(Conversation, Conversation.id == Message.conversation_id).where(
            conversation_in(Conversation.program, programs, catalog))
    for created, in session.execute(questions.group_by(Message.reply_to_id)):
        key = jst.jst_date(created).isoformat()
        questions_by_day[key] = questions_by_day.get(key, 0) + 1
    escalated = session.execute(select(func.count()).select_from(Ticket).where(
        Ticket.created_at >= since, Ticket.reason.in_(("not_confident", "not_helpful")), ticket_scope)).scalar_one()
    rated = [t for t, in session.execute(select(Ticket.satisfaction).where(
        Ticket.created_at >= since, Ticket.satisfaction.is_not(None), ticket_scope))]
    return {
        "d": figures,
        "tickets_chart": bar_chart([(k, per_day.get(k, 0)) for k in keys]),
        "questions_chart": bar_chart([(k, questions_by_day.get(k, 0)) for k in keys]),
        "deflection": rate(max(figures.questions - escalated, 0), figures.questions),
        "satisfaction_n": len(rated),
        "days": days,
    }


# ------------------------------------------------------------------ knowledge page
def knowledge_sources(session: Any) -> list[dict[str, Any]]:
    from knowledge.answering import Citation  # heavy: loads chromadb (through retrieval)

    rows = session.execute(select(KnowledgeSource).order_by(KnowledgeSource.title)).scalars()
    return [{"id": s.id, "title": s.title, "name": s.name, "kind": s.kind, "chunks": s.chunk_count,
             "program": Citation(source=s.name, title=s.title, section="", score=0).program,
             "edition": _edition(s.title, s.version), "date": jst_text(s.ingested_at), "path": s.path} for s in rows]


def _edition(title: str, version: int) -> str:
    year = re.search(r"(令和|平成)\s*(\d+|元)\s*年度", title)
    label = f"{year.group(1)}{year.group(2)}年度" if year else ""
    return f"{label}　第{version}版" if label else f"第{version}版"


def questions_to_review(session: Any, limit: int = 30, *, me: StaffAccount | None = None,
                        catalog: Any = None) -> list[dict[str, Any]]:
    """Questions the bot declined (no confident answer) or users marked 👎, newest first, each once; with
    `me` and the program catalog, only those asked in the member's programs (users' words are theirs)."""
    scope: Any = true()
    if me is not None and catalog is not None:
        programs = staff_programs(me, catalog)
        if programs is not None:
            scope = Message.conversation_id.in_(select(Conversation.id).where(
                conversation_in(Conversation.program, programs, catalog)))
    found: dict[str, dict[str, Any]] = {}
    answers = session.execute(select(Message).where(Message.direction == "out", Message.handler == QUESTION, scope)
                              .order_by(Message.id.desc()).limit(500)).scalars()
    declined = []
    for answer in answers:
        if answer_meta(answer).get("confident") is False and answer.reply_to_id:
            declined.append((answer, "回答を控えた", answer.created_at))
    downs = session.execute(select(Message).where(Message.direction == "in", Message.payload["choice"].as_string()
                                                  == "feedback:down", scope).order_by(Message.id.desc()).limit(200)).scalars()
    marked = []
    for down in downs:
        answer = session.execute(select(Message).where(
            Message.conversation_id == down.conversation_id, Message.direction == "out", Message.handler == QUESTION,
            Message.id < down.id).order_by(Message.id.desc()).limit(1)).scalar_one_or_none()
        if answer is not None and answer.reply_to_id:
            marked.append((answer, "👎 解決しない", down.created_at))
    for answer, why, at in sorted(declined + marked, key=lambda r: r[2], reverse=True):
        # the question's own words: an answer to a program's button replies to the press, which holds none
        text = (asked_question(session, answer) or "").strip()
        if not text or text in found:
            continue
        conversation = session.get(Conversation, answer.conversation_id)
        found[text] = {"question": text, "why": why, "at": jst_text(at),
                       "program": (conversation.program if conversation else "") or ""}
        if len(found) >= limit:
            break
    already = set(session.execute(select(FaqCandidate.question)).scalars())
    return [dict(item, candidate=item["question"] in already) for item in found.values()]


def try_question(services: Services, question: str) -> dict[str, Any]:
    answer = services.knowledge.ask(question)
    excerpts = []
    with services.db.session() as session:
        for citation in list({c.label(): c for c in answer.citations}.values())[:3]:  # each source section once
            source = session.execute(select(KnowledgeSource).where(KnowledgeSource.name == citation.source)
                                     .limit(1)).scalar_one_or_none()
            chunk = session.execute(select(KnowledgeChunk).where(
                KnowledgeChunk.source_id == (source.id if source else -1),  # type: ignore[arg-type]
                KnowledgeChunk.section == citation.section).limit(1)).scalar_one_or_none() if source else None
            excerpts.append({"label": citation.label(), "text": (chunk.text if chunk else "")[:400],
                             "url": web_chat.citations_of({"meta": {"citations": [
                                 {"label": citation.label(), "source": citation.source,
                                  "section": citation.section}]}})[0]["url"]})
    return {"question": question, "text": answer.text, "confident": answer.confident,
            "confidence": answer.confidence, "excerpts": excerpts}


UPLOAD_MAX_BYTES = 20 * 1024 * 1024
UPLOAD_PATH = "/staff/knowledge/upload"  # the one route whose body may exceed the app's 64 KB limit


def upload_admission(services: Services) -> Any:
    """The upload's larger body limit, decided from the headers before any byte of the body is read: only for a
    live admin session and a declared `Content-Length` (a chunked upload keeps the 64 KB limit), charged to the
    client address's and the account's hourly budget (`upload_mb_per_hour`; over it: 429). Anyone else keeps
    the 64 KB limit there (the route then answers the login redirect or 403 for a small body)."""
    from integrations.staff_console import staff_of_headers  # cycle: staff_console imports this module

    def decide(headers: list[tuple[bytes, bytes]], client: str, length: int | None) -> Verdict:
        with services.db.session() as session:
            account = staff_of_headers(services, headers, session)
            if account is None or account.role != "admin" or length is None:
                return "default"
            budget = services.settings.limits.upload_mb_per_hour * 1024 * 1024
            spent = max(throttle.hit(session, f"upload-bytes:ip:{client}", timedelta(hours=1), length),
                        throttle.hit(session, f"upload-bytes:staff:{account.id}", timedelta(hours=1), length))
            return "over_budget" if spent > budget else "allow"

    async def admit(scope: Any, length: int | None) -> Verdict:
        client = (scope.get("client") or ("unknown", 0))[0]
        return await run_in_threadpool(decide, list(scope.get("headers") or []), str(client), length)

    return admit


def upload_dir(services: Services) -> Path:
    return services.settings.data_dir / "uploads"


def safe_name(name: str) -> str:
    base = Path(name or "").name
    base = re.sub(r"[^\w.\-ぁ-んァ-ヶ一-龠ー（）()]", "_", base)[:120]
    return base.lstrip(".") or "upload"


# ------------------------------------------------------------------ routes
def install(api: Any) -> None:
    api.include_router(router)


def _console() -> Any:
    from integrations import staff_console  # a real cycle: staff_console's pages use this module's contexts

    return staff_console


def _member(request: Request, csrf: str) -> StaffAccount:
    """The logged-in member behind a console form POST, after its CSRF token is checked."""
    console = _console()
    console.check_csrf(request, csrf)
    with _services(request).db.session() as session:
        me: StaffAccount = console.current_staff(request, session)
        session.expunge(me)
        return me


def _back(request: Request, to: str, flash: str) -> RedirectResponse:
    """After a form POST: a message for the next page, and a 303 back to it."""
    request.session["flash"] = flash
    return RedirectResponse(to, status_code=303)


@router.get("/events")
async def staff_events(request: Request) -> Response:
    """Server-sent events for the console: `changed` whenever a ticket or its thread changes."""
    console = _console()
    services = _services(request)
    try:
        with services.db.session() as session:
            console.current_staff(request, session)
    except console.LoginRequired:
        return JSONResponse({"error": "login", "message": "ログインしてください。", "message_en": "Log in."}, 401)

    def fingerprint() -> tuple[object, ...]:
        with services.db.session() as session:
            return (session.execute(select(func.max(TicketMessage.id))).scalar_one(),
                    session.execute(select(func.max(AuditEvent.id)).where(AuditEvent.action.like("ticket.%"))).scalar_one(),
                    session.execute(select(func.count()).select_from(Ticket)).scalar_one())

    async def stream():  # type: ignore[no-untyped-def]
        yield "retry: 1000\n\n"
        seen = await run_in_threadpool(fingerprint)
        started = last_beat = time.monotonic()
        while time.monotonic() - started < EVENTS_MAX_S:
            if await request.is_disconnected():
                return
            await asyncio.sleep(EVENTS_POLL_S)
            now = await run_in_threadpool(fingerprint)
            if now != seen:
                seen = now
                yield "event: changed\ndata: {}\n\n"
            elif time.monotonic() - last_beat > 15:
                last_beat = time.monotonic()
                yield ": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/saved-replies")
def saved_replies_page(request: Request) -> HTMLResponse:
    console = _console()
    services = _services(request)
    with services.db.session() as session:
        me = console.current_staff(request, session)
        return console.render(request, "staff/saved_replies.html", me=me, replies=saved_replies(services))


@router.post("/saved-replies")
def saved_replies_add(request: Request, title: str = Form(""), text: str = Form(""), csrf: str = Form("")) -> Response:
    me = _member(request, csrf)
    if not title.strip() or not text.strip():
        return _back(request, "/staff/saved-replies", "題名と本文を入力してください。")
    save_reply(_services(request), me, title.strip()[:80], text.strip()[:4000])
    return _back(request, "/staff/saved-replies", f"定型文「{title.strip()[:80]}」を保存しました。")


@router.post("/saved-replies/delete")
def saved_replies_delete(request: Request, title: str = Form(""), csrf: str = Form("")) -> Response:
    me = _member(request, csrf)
    delete_reply(_services(request), me, title)
    return _back(request, "/staff/saved-replies", f"定型文「{title}」を削除しました。")


@router.get("/knowledge")
def knowledge_page(request: Request, q: str = "") -> HTMLResponse:
    console = _console()
    services = _services(request)
    tried = try_question(services, q.strip()[:500]) if q.strip() else None
    with services.db.session() as session:
        me = console.current_staff(request, session)
        return console.render(request, "staff/knowledge.html", me=me, sources=knowledge_sources(session),
                              review=questions_to_review(session, me=me, catalog=catalog_for(services)),
                              tried=tried, q=q,
                              admin=me.role == "admin", max_mb=UPLOAD_MAX_BYTES // (1024 * 1024))


def _admin(request: Request, csrf: str) -> StaffAccount | Response:
    me = _member(request, csrf)
    if me.role != "admin":
        return JSONResponse({"error": "forbidden", "message": "資料の変更は管理者だけができます。",
                             "message_en": "Admins only."}, status_code=403)
    return me


@router.post(UPLOAD_PATH.removeprefix("/staff"))
def knowledge_upload(request: Request, file: Annotated[UploadFile, File()], csrf: str = Form("")) -> Response:
    """Add or replace a manual / FAQ file (same formats as `knowledge ingest`); replies JSON for the page."""
    from knowledge.ingest import ingest_paths  # heavy: loads chromadb and the embedder

    me = _admin(request, csrf)
    if isinstance(me, Response):
        return me
    services = _services(request)
    name = safe_name(file.filename or "")
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        return JSONResponse({"ok": False, "message": "この形式は取り込めません（" + " ".join(sorted(SUPPORTED_SUFFIXES)) + "）。"},
                            status_code=422)
    data = file.file.read(UPLOAD_MAX_BYTES + 1)
    if len(data) > UPLOAD_MAX_BYTES:
        return JSONResponse({"ok": False, "message": "ファイルが大きすぎます。"}, status_code=413)
    folder = upload_dir(services)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    tmp.replace(path)
    report = ingest_paths(services, [path])
    result = report.results[0] if report.results else None
    with services.db.session() as session:
        audit.record(session, "knowledge.uploaded", subject_type="knowledge_source", subject_id=name,
                     data={"by": me.username, "status": result.status if result else "none"})
    if result is None or result.status == "error":
        return JSONResponse({"ok": False, "message": "取り込めませんでした：" + (result.message if result else "")},
                            status_code=422)
    status = {"new": "追加しました", "updated": "差し替えました", "unchanged": "内容に変更はありませんでした"}[result.status]
    return JSONResponse({"ok": True, "message": f"{name} を{status}（{result.chunks}件の区分）。", "status": result.status})


@router.post("/knowledge/{source_id}/delete")
def knowledge_delete(request: Request, source_id: int, csrf: str = Form("")) -> Response:
    from knowledge.ingest import _remove_source  # heavy: loads chromadb and the embedder
    from knowledge.vectorstore import VectorStore  # heavy: loads chromadb

    me = _admin(request, csrf)
    if isinstance(me, Response):
        return me
    services = _services(request)
    with services.db.session() as session:
        source = session.get(KnowledgeSource, source_id)
        if source is None:
            return _back(request, "/staff/knowledge", "その資料はありません。")
        name, path = source.name, Path(source.path)
        _remove_source(session, VectorStore(services.settings), source_id)
        audit.record(session, "knowledge.deleted", subject_type="knowledge_source", subject_id=name,
                     data={"by": me.username})
    if path.is_relative_to(upload_dir(services)) and path.exists():
        path.unlink()
    services.knowledge_changed()
    return _back(request, "/staff/knowledge", f"{name} を削除しました。")


@router.post("/knowledge/candidate")
def knowledge_candidate(request: Request, question: str = Form(""), csrf: str = Form(""),
                        program: str = Form("")) -> Response:
    """A declined or 👎 question becomes a FAQ candidate in one step (its answer is written on the FAQ page), in
    the program it was asked in when the member works for it (the program can be changed on the FAQ page)."""
    me = _member(request, csrf)
    catalog = catalog_for(_services(request))
    owner = program if catalog.get(program) and may_see(staff_programs(me, catalog), program, catalog) else None
    if question.strip():
        with _services(request).db.session() as session:
            candidate = FaqCandidate(question=question.strip()[:4000], answer="", created_by=me.id, status="pending",
                                     program=owner)
            session.add(candidate)
            session.flush()
            audit.record(session, "faq.candidate_created", subject_type="faq_candidate", subject_id=candidate.id,
                         data={"from": "knowledge_review", "staff": me.username})
    return _back(request, "/staff/knowledge", "FAQ候補にしました。「FAQ候補」で回答を書いて公開できます。")
