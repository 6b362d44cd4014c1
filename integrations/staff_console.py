"""The staff console at `/staff`: queue, conversation, reply, claim, resolve, dashboard, FAQ review.

Server-rendered with Jinja2 (no front-end build). Login checks an argon2
hash; the session is a signed cookie (HttpOnly, SameSite=Strict, Secure
unless `MADOGUCHI_STAFF__COOKIE_SECURE=false` for local HTTP); every form carries a
per-session CSRF token. Without a session every page redirects to the login
and every POST changes nothing. The cookie names a server-side session (`bot.security.staff_sessions`)
that logout, a password change, disabling and idling end. Login tries are counted per normalized user
name and per client address before the password is checked (`bot.security.login_guard`).
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from pathlib import Path
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.middleware.sessions import SessionMiddleware

from handlers.escalation import staff as staff_accounts
from bot import jst
from handlers.escalation import tickets
from bot.programs import catalog_for, may_see, program_in, staff_programs
from bot.security import login_guard, staff_sessions
from bot.services import Services
from bot.storage.models import FaqCandidate
from bot.storage import audit
from handlers.escalation.models import StaffAccount, Ticket
from handlers.hearing.export import response_document
from handlers.hearing.models import FormResponse
from handlers.hearing.schema import catalog as forms_catalog
from handlers.visits.models import Visit
from integrations import staff_inbox
from http.cookies import SimpleCookie
import itsdangerous
from knowledge import faq_review

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
SESSION_HOURS = 8
SESSION_COOKIE = "madoguchi_staff"
FILTERS = {"open": "未対応", "mine": "自分の担当", "overdue": "期限超過", "active": "対応中すべて", "all": "すべて"}


class LoginRequired(Exception):
    pass


def session_secret(services: Services) -> str:
    """The configured secret, else one generated once and kept (0600) in the data dir."""
    configured = services.settings.staff.session_secret
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    path = services.settings.data_dir / "staff_session_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def install(api: FastAPI, services: Services) -> None:
    api.add_middleware(SessionMiddleware, secret_key=session_secret(services), session_cookie=SESSION_COOKIE,
                       max_age=SESSION_HOURS * 3600, same_site="strict",
                       https_only=services.settings.staff.cookie_secure)
    api.include_router(router)

    staff_inbox.install(api)

    @api.exception_handler(LoginRequired)
    async def to_login(_request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse("/staff/login", status_code=303)


router = APIRouter(prefix="/staff", include_in_schema=False)


# ----------------------------------------------------------------- helpers
def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, token: str) -> None:
    expected = request.session.get("csrf") or ""
    if not expected or not hmac.compare_digest(str(expected), token or ""):
        raise HTTPException(403, detail={"error": "csrf", "message": "フォームの有効期限が切れました。画面を開き直してください。",
                                         "message_en": "Invalid form token."})


def staff_of_headers(services: Services, headers: list[tuple[bytes, bytes]], session: Any) -> StaffAccount | None:
    """The live, active account of the console cookie in raw request headers (read as `SessionMiddleware` reads
    it: signed, at most `SESSION_HOURS` old), for a decision taken before the request reaches the app; None
    without one. Touches the session as a page view does."""


    cookie: SimpleCookie = SimpleCookie()
    for name, value in headers:
        if name == b"cookie":
            try:
                cookie.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header: no session
                return None
    morsel = cookie.get(SESSION_COOKIE)
    if morsel is None:
        return None
    try:
        data = itsdangerous.TimestampSigner(session_secret(services)).unsign(morsel.value.encode(),
                                                                            max_age=SESSION_HOURS * 3600)
        sid = json.loads(base64.b64decode(data)).get("sid")
    except (itsdangerous.BadSignature, ValueError, AttributeError):
        return None
    staff_id = staff_sessions.resolve(session, sid if isinstance(sid, str) else None, services.settings)
    account = session.get(StaffAccount, staff_id) if staff_id else None
    return account if account is not None and account.active else None


def current_staff(request: Request, session: Any) -> StaffAccount:
    staff_id = staff_sessions.resolve(session, request.session.get("sid"), _services(request).settings)
    account = session.get(StaffAccount, staff_id) if staff_id else None
    if account is None or not account.active:
        request.session.pop("sid", None)
        raise LoginRequired
    return account  # type: ignore[no-any-return]


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context |= {"csrf": csrf_token(request), "flash": request.session.pop("flash", None), "to_jst": to_jst,
                "number": tickets.number, "STATUS": tickets.STATUS_LABELS}
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def to_jst(moment: Any) -> str:
    local = jst.to_jst(moment)
    return local.strftime("%m/%d %H:%M") if local else ""


def back_to(ticket_id: int, flash: str, request: Request) -> RedirectResponse:
    request.session["flash"] = flash
    return RedirectResponse(f"/staff/tickets/{ticket_id}", status_code=303)


# ------------------------------------------------------------------ login
@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    """The login form; right after a refused login, with why and that refusal's status (401, 429)."""
    refused = request.session.pop("login_refused", None)
    if isinstance(refused, dict):
        return render(request, "staff/login.html", status=int(refused.get("status", 401)),
                      error=str(refused.get("error", "")), username=str(refused.get("username", ""))[:80])
    return render(request, "staff/login.html")


def _refused(request: Request, status: int, error: str, username: str) -> RedirectResponse:
    """A refused login is answered like every console form (post/redirect/get): reloading the page shows the
    form again and never sends the password a second time (which would count as another failure)."""
    request.session["login_refused"] = {"status": status, "error": error, "username": username[:80]}
    return RedirectResponse("/staff/login", status_code=303)


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""), csrf: str = Form("")) -> Response:
    check_csrf(request, csrf)
    services = _services(request)
    client_ip = request.client.host if request.client else "unknown"
    if not login_guard.admit(services, username, client_ip):  # counted before the password is checked
        return _refused(request, 429, "ログインの失敗が続いたため、しばらくログインできません。15分ほどおいてお試しください。",
                        username)
    with services.db.session() as session:
        account = staff_accounts.authenticate(session, username, password)
        if account is None:
            return _refused(request, 401, "ユーザー名またはパスワードが違います。", username)
        token = staff_sessions.start(session, account.id)
    login_guard.succeeded(services, username, client_ip)
    request.session.clear()  # a fresh session (and CSRF token) at login: no fixation
    request.session["sid"] = token
    return RedirectResponse("/staff", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    check_csrf(request, csrf)
    with _services(request).db.session() as session:
        staff_sessions.end(session, request.session.get("sid"))
    request.session.clear()
    return RedirectResponse("/staff/login", status_code=303)


# ------------------------------------------------------------------ queue
@router.get("")
def queue(request: Request, filter: str = "active") -> HTMLResponse:  # noqa: A002

    services = _services(request)
    with services.db.session() as session:
        me = current_staff(request, session)
        return render(request, "staff/inbox.html", me=me,
                      q=staff_inbox.queue_context(session, me, filter, catalog_for(services)), ticket=None)


def _visible(services: Services, me: StaffAccount, record: Any) -> bool:
    """A record of a program the member does not work for is, to them, a record that does not exist (404)."""
    catalog = catalog_for(services)
    return record is not None and may_see(staff_programs(me, catalog), record.program, catalog)


@router.get("/tickets/{ticket_id}")
def ticket_page(request: Request, ticket_id: int, filter: str = "active") -> HTMLResponse:  # noqa: A002

    services = _services(request)
    with services.db.session() as session:
        me = current_staff(request, session)
        ticket = session.get(Ticket, ticket_id)
        if not _visible(services, me, ticket):
            return render(request, "staff/message.html", status=404, me=me, message="そのお問い合わせはありません。")
        assert ticket is not None
        return render(request, "staff/inbox.html", me=me,
                      q=staff_inbox.queue_context(session, me, filter, catalog_for(services)),
                      ticket=ticket, messages=list(ticket.messages),
                      transcript=staff_inbox.clean_transcript(ticket.transcript or []),
                      ctx=staff_inbox.context_of(session, ticket),
                      saved=staff_inbox.saved_replies(services))


def _act(request: Request, ticket_id: int, csrf: str, action: Any, done: str) -> Response:
    check_csrf(request, csrf)
    services = _services(request)
    with services.db.session() as session:
        me = current_staff(request, session)
        ticket = session.get(Ticket, ticket_id)
        if not _visible(services, me, ticket):
            raise HTTPException(404, detail={"error": "not_found", "message": "そのお問い合わせはありません。",
                                             "message_en": "No such ticket."})
        try:
            action(session, ticket, me)
        except tickets.TicketError as error:
            message = {"claimed_by_other": f"{error.who}さんが既に担当しています。",
                       "not_open": "このお問い合わせは既に終了しています。",
                       "no_answer": "まだ担当者の回答がありません。"}.get(error.reason, "操作できませんでした。")
            session.rollback()
            return back_to(ticket_id, message, request)
    return back_to(ticket_id, done, request)


@router.post("/tickets/{ticket_id}/claim")
def claim(request: Request, ticket_id: int, csrf: str = Form("")) -> Response:
    return _act(request, ticket_id, csrf, lambda s, t, me: tickets.claim(s, t.id, me), "担当になりました。")


@router.post("/tickets/{ticket_id}/reply")
def reply(request: Request, ticket_id: int, text: str = Form(""), csrf: str = Form("")) -> Response:
    if not text.strip():
        check_csrf(request, csrf)
        return back_to(ticket_id, "回答を入力してください。", request)
    return _act(request, ticket_id, csrf,
                lambda s, t, me: tickets.staff_reply(s, t, me, text.strip(), via="console"),
                "回答を送りました。利用者のチャットに届きます。")


@router.post("/tickets/{ticket_id}/resolve")
def resolve(request: Request, ticket_id: int, csrf: str = Form("")) -> Response:
    response = _act(request, ticket_id, csrf, lambda s, t, me: tickets.resolve(s, t, actor=me.username),
                    "解決にしました。利用者に満足度アンケートを送りました。")
    return _to_next(request, ticket_id, response)


@router.post("/tickets/{ticket_id}/close")
def close(request: Request, ticket_id: int, csrf: str = Form(""), confirm: str = Form("")) -> Response:
    if confirm != "yes":  # closing without an answer is confirmed explicitly (the user gets nothing)
        check_csrf(request, csrf)
        services = _services(request)
        with services.db.session() as session:
            me = current_staff(request, session)
            if not _visible(services, me, session.get(Ticket, ticket_id)):
                raise HTTPException(404, detail={"error": "not_found", "message": "そのお問い合わせはありません。",
                                                 "message_en": "No such ticket."})
        return back_to(ticket_id, "回答なしで終了するには、確認の欄にチェックを入れてください。", request)
    response = _act(request, ticket_id, csrf, lambda s, t, me: tickets.close(s, t, actor=me.username),
                    "回答なしで終了しました。")
    return _to_next(request, ticket_id, response)


def _to_next(request: Request, ticket_id: int, response: Response) -> Response:
    """After a ticket is done, go on to the next one waiting (or the queue when none is)."""
    flash = str(request.session.get("flash") or "")
    if "既に終了" in flash or "できませんでした" in flash:
        return response
    services = _services(request)
    with services.db.session() as session:
        me = current_staff(request, session)
        following = staff_inbox.next_ticket(session, me, ticket_id, catalog_for(services))
    if following is None:
        request.session["flash"] = flash + " 対応待ちのお問い合わせはありません。"
        return RedirectResponse("/staff", status_code=303)
    request.session["flash"] = flash + f" 次のお問い合わせ（{tickets.number(following)}）です。"
    return RedirectResponse(f"/staff/tickets/{following}", status_code=303)


@router.post("/tickets/{ticket_id}/faq")
def faq_candidate(request: Request, ticket_id: int, csrf: str = Form("")) -> Response:
    return _act(request, ticket_id, csrf, lambda s, t, me: tickets.make_faq_candidate(s, t, me),
                "FAQ候補にしました。「FAQ候補」で確認して公開できます。")


# -------------------------------------------------------------- dashboard
@router.get("/dashboard")
def dashboard(request: Request) -> HTMLResponse:
    services = _services(request)
    with services.db.session() as session:
        me = current_staff(request, session)
        return render(request, "staff/dashboard.html", me=me,
                      **staff_inbox.dashboard_context(session, me=me, catalog=catalog_for(services)))


# ----------------------------------------------------- hearing sheets and visits
@router.get("/hearings")
def hearings_page(request: Request) -> HTMLResponse:
    """Submitted hearing sheets of the member's programs, newest first."""
    services = _services(request)
    with services.db.session() as session:
        me = current_staff(request, session)
        catalog = catalog_for(services)
        rows = list(session.execute(select(FormResponse).where(
            FormResponse.status == "submitted", program_in(FormResponse.program, staff_programs(me, catalog), catalog))
            .order_by(FormResponse.id.desc()).limit(200)).scalars())
        return render(request, "staff/hearings.html", me=me, responses=rows, catalog=catalog)


@router.get("/hearings/{response_id}")
def hearing_page(request: Request, response_id: int) -> HTMLResponse:
    return _record_page(request, FormResponse, response_id, "その回答はありません。", "hearing.viewed", "form_response",
                        "staff/hearing.html",
                        lambda services, response: {"doc": response_document(forms_catalog(services), response)})


@router.get("/visits/{visit_id}")
def visit_page(request: Request, visit_id: int) -> HTMLResponse:
    return _record_page(request, Visit, visit_id, "その訪問記録はありません。", "visit.viewed", "visit",
                        "staff/visit.html", lambda services, visit: {"visit": visit})


def _record_page(request: Request, model: type[Any], row_id: int, missing: str, action: str, subject_type: str,
                 template: str, context: Callable[[Services, Any], dict[str, Any]]) -> HTMLResponse:
    """A record's page: 404 unless the member works for its program, the viewing in the audit trail, then
    the template with `context(services, row)`."""
    services = _services(request)
    with services.db.session() as session:
        me = current_staff(request, session)
        row = session.get(model, row_id)
        if row is None or not _visible(services, me, row):
            return render(request, "staff/message.html", status=404, me=me, message=missing)
        audit.record(session, action, subject_type=subject_type, subject_id=row.id,
                     data={"actor": f"staff:{me.username}", "via": "console"})
        return render(request, template, me=me, program=catalog_for(services).owner_id(row.program),
                      **context(services, row))


# -------------------------------------------------------------------- FAQ
@router.get("/faq")
def faq_page(request: Request) -> HTMLResponse:
    services = _services(request)
    with services.db.session() as session:
        me = current_staff(request, session)
        catalog = catalog_for(services)
        # A candidate belongs to a program (its ticket's, or chosen here) and quotes that program's users: only
        # the member's programs' (one without a program: the default's); shared entries everyone may read.
        mine = staff_programs(me, catalog)
        rows = list(session.execute(
            select(FaqCandidate).where(program_in(FaqCandidate.program, mine, catalog) | FaqCandidate.shared)
            .order_by(FaqCandidate.id.desc()).limit(100)).scalars())
        choices = [(p.id, p.label) for p in catalog if mine is None or p.id in mine]
        if me.role == "admin":
            choices.append((SHARED, "全事業共通"))
        return render(request, "staff/faq.html", me=me, candidates=rows, choices=choices,
                      owner=lambda c: SHARED if c.shared else catalog.owner_id(c.program),
                      label=dict(choices) | {p.id: p.label for p in catalog} | {SHARED: "全事業共通"})


#: The program choice of an FAQ entry that answers in every program (admins only).
SHARED = "*"


@router.post("/faq/{candidate_id}/{decision}")
def faq_decide(request: Request, candidate_id: int, decision: str, csrf: str = Form(""),
               question: str = Form(""), answer: str = Form(""), program: str = Form("")) -> Response:

    check_csrf(request, csrf)
    services = _services(request)
    catalog = catalog_for(services)
    with services.db.session() as session:
        me = current_staff(request, session)
        reviewer, mine = me.username, staff_programs(me, catalog)
        candidate = session.get(FaqCandidate, candidate_id)
        if candidate is None or not may_see(mine, candidate.program, catalog):
            raise HTTPException(404, detail={"error": "not_found", "message": "その FAQ 候補はありません。",
                                             "message_en": "No such FAQ candidate."})
        # The program it will answer in: the member's own programs only; every program (shared) admins only.
        if program == SHARED and me.role != "admin":
            raise HTTPException(403, detail={"error": "forbidden", "message": "全事業共通にできるのは管理者だけです。",
                                             "message_en": "Only admins may share an entry with every program."})
        if program not in ("", SHARED) and (catalog.get(program) is None or not may_see(mine, program, catalog)):
            raise HTTPException(403, detail={"error": "forbidden", "message": "その事業の FAQ は公開できません。",
                                             "message_en": "Not a program of yours."})
    chosen, shared = (None, True) if program == SHARED else ((program, False) if program else (None, None))
    try:
        if decision == "publish":
            with services.db.session() as session:
                stored = session.get(FaqCandidate, candidate_id)
                if stored is not None and not (answer.strip() or stored.answer.strip()):
                    raise ValueError("回答を入力してから公開してください。")
            faq_review.publish(services, candidate_id, reviewer, question=question or None, answer=answer or None,
                               program=chosen, shared=shared)
            request.session["flash"] = "公開しました。次の利用者から自動で回答されます。"
        elif decision == "reject":
            faq_review.reject(services, candidate_id, reviewer)
            request.session["flash"] = "却下しました。"
    except ValueError as error:
        request.session["flash"] = str(error)
    return RedirectResponse("/staff/faq", status_code=303)

