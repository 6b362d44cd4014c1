"""The hearing sheet as a LIFF web form inside LINE: personal data typed into our page, not into LINE.

The 2021 government guideline on LINE use asks that consultations,
applications and personal data be kept in the operator's own system, not in
LINE messages. So on LINE the hearing sheet is this page, opened inside LINE
as a LIFF app (`https://liff.line.me/<liff id>`, from the rich menu or the
chat's button):

- `GET /liff/{program}/hearing` serves the page; it loads LINE's LIFF SDK,
  which gives it the user's ID token (`liff.getIDToken()`);
- `GET /liff/{program}/hearing/form` the questions, as JSON;
- `POST /liff/{program}/hearing` the answers with the ID token. The token is
  verified on the server with LINE's verify endpoint (`/oauth2/v2.1/verify`,
  audience = the program's LINE Login channel id) before anything is read or
  stored: a forged, expired or other channel's token is 401 and nothing is
  written. The answers are parsed by the same rules as the chat's
  (`handlers.hearing.answers`), and a valid submission is stored as the same
  `FormResponse` the chat flow would submit (same form, version, values and
  labels, status `submitted`, reference number, staff notification, audit),
  for the person whose LINE account the token names: the same person as in
  the LINE chat when the LIFF app and the Messaging API channel share a
  provider, as LINE requires for the same user id.
- `POST /liff/{program}/hearing/draft` (ID token verified the same way): a
  hearing the person began in the LINE chat is taken over: the page opens
  with the answers given so far, and the submission completes that same
  response and ends the chat's flow (one response, not two).

Each of these requests asks LINE to verify a token, so they are counted per
client address and overall before LINE is asked (`limits.liff_attempts_per_ip`
and `limits.liff_attempts_global` per 10 minutes; over them: 429, LINE is not
called), and the verification and the database work run off the event loop (a
slow LINE endpoint held every other request of the server).
"""

from __future__ import annotations

import html
import json
import logging
import time
from datetime import date, timedelta
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from handlers.hearing import reference_number
from handlers.hearing.answers import AnswerError, parse_answer, validate_selection
from handlers.hearing.progress import applicable_questions, effective_answers, missing_required
from handlers.hearing.schema import Form, Question
from handlers.hearing.schema import catalog as forms_catalog
from bot.i18n import add_strings, t
from bot.notify import notify_staff
from bot.programs import Program, catalog_for
from bot.security import throttle
from bot.services import Services
from bot.storage import audit
from bot.storage.models import ChannelIdentity, Person, utcnow
from handlers.hearing.models import FormResponse
from bot.programs import program_is
from bot.storage.models import Conversation

log = logging.getLogger(__name__)

CHANNEL = "liff"
IDENTITY_CHANNEL = "line"  # the ID token's subject is the user's LINE user id
VERIFY_PATH = "/oauth2/v2.1/verify"
ISSUER = "https://access.line.me"
MAX_ANSWERS = 200


add_strings("ja", {"liff_required": "この質問は必須です。"})
add_strings("en", {"liff_required": "This question is required."})


class InvalidIdToken(Exception):
    """LINE did not vouch for the token (forged, expired, another channel's)."""


class VerifyUnavailable(Exception):
    """LINE's verify endpoint could not be reached: nothing is stored, the user may retry."""


def verify_id_token(api_url: str, id_token: str, channel_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The token's claims, as LINE's verify endpoint returns them, after checking audience, issuer and
    expiry once more here. Raises InvalidIdToken or VerifyUnavailable."""
    if not id_token or len(id_token) > 4096:
        raise InvalidIdToken("missing")
    try:
        answer = httpx.post(api_url.rstrip("/") + VERIFY_PATH, data={"id_token": id_token, "client_id": channel_id},
                            timeout=timeout)
    except httpx.HTTPError as error:
        raise VerifyUnavailable(str(error)) from error
    if answer.status_code >= 500:
        raise VerifyUnavailable(f"verify {answer.status_code}")
    try:
        claims = answer.json()
    except ValueError:
        raise VerifyUnavailable("verify answered no JSON") from None
    if answer.status_code != 200:
        raise InvalidIdToken(str(claims.get("error_description") or claims.get("error") or answer.status_code))
    if claims.get("aud") != channel_id or claims.get("iss") != ISSUER or not claims.get("sub"):
        raise InvalidIdToken("audience or issuer")
    if float(claims.get("exp", 0)) <= time.time():
        raise InvalidIdToken("expired")
    return dict(claims)


def _error(status: int, code: str, message: str, message_en: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, "message_en": message_en, **extra}, status_code=status)


def _form_for(services: Services, program: Program | None) -> Form | None:
    if program is None or not program.hearing_form or not (program.line and program.line.login_channel_id):
        return None
    form = forms_catalog(services).latest(program.hearing_form)
    return form if form is not None and form.allows(CHANNEL) else None


def liff_link(program: Program) -> str | None:
    """Where LINE opens the program's hearing form (None when the program has no LIFF app)."""
    return program.liff_url()


def parse_submission(form: Form, raw: dict[str, Any], today: date | None = None
                     ) -> tuple[dict[str, Any], dict[str, str]]:
    """(answers, errors by question id): each raw value read as the chat reads a typed answer, only for
    the questions that apply given the earlier answers (the form's `when` conditions)."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for question in form.questions:
        if question.when is not None and not question.when.holds(answers.get(question.when.question)):
            continue
        value = raw.get(question.id)
        if value in (None, "", []):
            answers[question.id] = None
            continue
        try:
            answers[question.id] = _value(question, value, today)
        except AnswerError as error:
            values: dict[str, Any] = dict(error.values)
            errors[question.id] = t(error.key, **values)
        except (TypeError, ValueError):
            errors[question.id] = t("hearing_expect_nonempty")
    answers = effective_answers(form, answers)
    for question in missing_required(form, answers):
        errors.setdefault(question.id, t("liff_required"))
    return answers, errors


def _value(question: Question, value: Any, today: date | None) -> Any:
    if question.type == "multi_choice":
        values = value if isinstance(value, list) else [value]
        known = {o.value for o in question.options}
        if all(isinstance(v, str) and v in known for v in values):
            return validate_selection(question, list(dict.fromkeys(values)))
        return parse_answer(question, "、".join(str(v) for v in values), today)
    if question.type == "single_choice" and isinstance(value, str) and value in {o.value for o in question.options}:
        return value
    if question.type == "yes_no" and isinstance(value, bool):
        return value
    if question.type == "yes_no" and value in ("yes", "no"):
        return value == "yes"
    if not isinstance(value, str | int | float):
        raise TypeError(question.id)
    return parse_answer(question, str(value), today)


def person_for_line_user(session: Any, user_id: str, display_name: str | None) -> Person:
    """The person behind a LINE user id: the one the LINE chat already knows, else a new applicant."""
    query = select(ChannelIdentity).where(ChannelIdentity.channel == IDENTITY_CHANNEL,
                                          ChannelIdentity.external_user_id == user_id)
    identity = session.execute(query).scalar_one_or_none()
    if identity is not None:
        return identity.person  # type: ignore[no-any-return]
    try:
        with session.begin_nested():
            person = Person(display_name=display_name)
            session.add(person)
            session.flush()
            session.add(ChannelIdentity(person_id=person.id, channel=IDENTITY_CHANNEL, external_user_id=user_id,
                                        display_name=display_name))
            session.flush()
    except IntegrityError:  # the chat created them at the same moment
        return session.execute(query).scalar_one().person  # type: ignore[no-any-return]
    audit.record(session, "person.created", actor_person_id=person.id, subject_type="person", subject_id=person.id,
                 data={"channel": CHANNEL})
    return person


def draft_of(session: Any, services: Services, form: Form, user_id: str, program_id: str) -> FormResponse | None:
    """The LINE user's hearing of this form and program in progress in the chat (locked), if any."""
    identity = session.execute(select(ChannelIdentity).where(
        ChannelIdentity.channel == IDENTITY_CHANNEL, ChannelIdentity.external_user_id == user_id)).scalar_one_or_none()
    if identity is None:
        return None
    return session.execute(  # type: ignore[no-any-return]
        select(FormResponse).where(FormResponse.person_id == identity.person_id, FormResponse.status == "in_progress",
                                   FormResponse.form_id == form.id,
                                   program_is(FormResponse.program, program_id, catalog_for(services)))
        .order_by(FormResponse.id.desc()).limit(1).with_for_update()).scalar_one_or_none()


def page_values(form: Form, answers: dict[str, Any]) -> dict[str, Any]:
    """Stored answers as the page's fields hold them (option values, yes/no, text), to prefill the form."""
    values: dict[str, Any] = {}
    for question in form.questions:
        value = answers.get(question.id)
        if value is None:
            continue
        if isinstance(value, bool):
            values[question.id] = "yes" if value else "no"
        elif isinstance(value, list):
            values[question.id] = [str(v) for v in value]
        else:
            values[question.id] = str(value)
    return values


def _end_chat_flows(session: Any, response: FormResponse) -> None:
    """The chat interview this response was: its flow ends (the LIFF form submitted it), so the chat neither
    asks its next question nor keeps a second copy."""

    for conversation in session.execute(select(Conversation).where(
            Conversation.person_id == response.person_id, Conversation.active_flow == "hearing")).scalars():
        if (conversation.flow_state or {}).get("response_id") == response.id:
            conversation.active_flow, conversation.flow_state = None, {}
            audit.record(session, "flow.finished", actor_person_id=response.person_id, subject_type="conversation",
                         subject_id=conversation.id, data={"flow": "hearing", "by": CHANNEL})


def store_submission(session: Any, form: Form, person: Person, answers: dict[str, Any], program_id: str | None,
                     draft: FormResponse | None = None) -> FormResponse:
    """The submitted response, exactly as the chat flow stores one at 「送信する」. With a `draft` (the same
    hearing begun in the chat) that response is completed and its chat flow ends: one response, not two."""
    labels = {q.id: q.short_label for q in form.questions}
    state = {"cursor": "__summary__", "history": [q.id for q in applicable_questions(form, answers)]}
    if draft is not None:
        started_on = draft.channel
        draft.form_version, draft.channel, draft.status = form.version, CHANNEL, "submitted"
        draft.answers, draft.labels, draft.state, draft.submitted_at = answers, labels, state, utcnow()
        response = draft
        _end_chat_flows(session, response)
        audit.record(session, "hearing.taken_over", actor_person_id=person.id, subject_type="form_response",
                     subject_id=response.id, data={"from": started_on, "to": CHANNEL})
    else:
        response = FormResponse(form_id=form.id, form_version=form.version, person_id=person.id, channel=CHANNEL,
                                status="submitted", answers=answers, labels=labels, state=state, submitted_at=utcnow())
        response.program = program_id
        session.add(response)
    session.flush()
    number = reference_number(response.id)
    company = str(answers.get("company_name") or "-")
    notify_staff(session, "hearing.submitted", t("hearing_notification_title", number=number, company=company),
                 subject_type="form_response", subject_id=response.id, actor_person_id=person.id,
                 data={"form": form.id, "version": form.version, "number": number, "channel": CHANNEL,
                       "program": program_id})
    audit.record(session, "hearing.submitted", actor_person_id=person.id, subject_type="form_response",
                 subject_id=response.id, data={"form": form.id, "version": form.version, "number": number,
                                               "channel": CHANNEL, "program": program_id})
    return response


def form_document(form: Form) -> dict[str, Any]:
    """The questions as the page needs them (labels, types, options, conditions)."""
    return {"id": form.id, "version": form.version, "title": form.title, "description": form.description,
            "sections": [{"title": s.title, "questions": [
                {"id": q.id, "prompt": q.prompt, "help": q.help, "example": q.example, "type": q.type,
                 "required": q.required, "unit": q.unit,
                 "options": [{"value": o.value, "label": o.label} for o in q.options],
                 "when": q.when.model_dump(by_alias=True, exclude_none=True) if q.when else None}
                for q in s.questions]} for s in form.sections]}


#: The page's own policy (the app's default allows scripts from this origin only): LINE's LIFF SDK and the
#: LINE endpoints it talks to, nothing else.
LIFF_CSP = ("default-src 'self'; script-src 'self' https://static.line-scdn.net; "
            "style-src 'self'; img-src 'self' data: https://profile.line-scdn.net; "
            "connect-src 'self' https://api.line.me https://access.line.me https://liffsdk.line-scdn.net; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")

router = APIRouter(prefix="/liff", include_in_schema=False)


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


@router.get("/{program_id}/hearing")
def page(request: Request, program_id: str) -> HTMLResponse:
    services = _services(request)
    program = catalog_for(services).get(program_id)
    form = _form_for(services, program)
    if program is None or form is None:
        return HTMLResponse("<p>このフォームはありません。</p>", status_code=404)
    assert program.line is not None
    config = json.dumps({"liffId": program.line.liff_id, "program": program.id}).replace("<", "\\u003c")
    body = PAGE.replace("{{title}}", html.escape(f"{form.title}（{program.label}）")).replace("{{config}}", config)
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "Content-Security-Policy": LIFF_CSP})


@router.get("/{program_id}/hearing/form")
def form_json(request: Request, program_id: str) -> JSONResponse:
    services = _services(request)
    form = _form_for(services, catalog_for(services).get(program_id))
    if form is None:
        return _error(404, "not_found", "このフォームはありません。", "No such form.")
    return JSONResponse(form_document(form))


#: The window of the submission limits.
ATTEMPT_WINDOW = timedelta(minutes=10)


def _admitted(services: Services, client_ip: str) -> bool:
    """Count this request against the address and overall; False when either is over its limit."""
    limits = services.settings.limits
    with services.db.session() as session:
        per_ip = throttle.hit(session, f"liff:ip:{client_ip}", ATTEMPT_WINDOW)
        overall = throttle.hit(session, "liff:all", ATTEMPT_WINDOW)
    return per_ip <= limits.liff_attempts_per_ip and overall <= limits.liff_attempts_global


async def _verified(request: Request, program_id: str, answers: bool
                    ) -> tuple[Program, Form, dict[str, Any], dict[str, Any]] | JSONResponse:
    """(program, form, body, the ID token's claims), or the error answer: LINE vouches for the ID token before
    anything is read or stored. The limits and LINE's answer are waited for off the event loop."""
    services = _services(request)
    program = catalog_for(services).get(program_id)
    form = _form_for(services, program)
    if program is None or form is None:
        return _error(404, "not_found", "このフォームはありません。", "No such form.")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "malformed_json", "JSON の形式が正しくありません。", "Malformed JSON body.")
    if not isinstance(body, dict) or not isinstance(body.get("id_token"), str) or (answers and (
            not isinstance(body.get("answers"), dict) or len(body["answers"]) > MAX_ANSWERS)):
        return _error(422, "invalid_request", "入力内容を確認してください。", "Send id_token and answers.")
    client_ip = request.client.host if request.client else "unknown"
    claims = await run_in_threadpool(_claims, services, program, body["id_token"], client_ip)
    return claims if isinstance(claims, JSONResponse) else (program, form, body, claims)


def _claims(services: Services, program: Program, id_token: str, client_ip: str) -> dict[str, Any] | JSONResponse:
    if not _admitted(services, client_ip):
        log.warning("liff requests over the limit", extra={"program": program.id})
        return _error(429, "rate_limited", "送信が多すぎます。しばらくしてからお試しください。",
                      "Too many submissions; please try again later.")
    assert program.line is not None and program.line.login_channel_id is not None
    try:  # before anything is read or stored: who is this, according to LINE?
        return verify_id_token(services.settings.line.api_url, id_token, program.line.login_channel_id)
    except InvalidIdToken as error:
        log.info("liff id token rejected", extra={"program": program.id, "reason": str(error)})
        return _error(401, "invalid_id_token", "LINE の認証を確認できませんでした。LINE アプリから開き直してください。",
                      "The LINE ID token is invalid or expired.")
    except VerifyUnavailable:
        log.warning("liff verify endpoint unavailable", extra={"program": program.id})
        return _error(503, "verify_unavailable", "LINE の認証を確認できませんでした。しばらくしてからお試しください。",
                      "LINE's verify endpoint is unavailable; nothing was stored.")


@router.post("/{program_id}/hearing/draft")
async def draft(request: Request, program_id: str) -> JSONResponse:
    """The answers given so far in a hearing begun in the LINE chat, so the form opens where the chat left off."""
    checked = await _verified(request, program_id, answers=False)
    if isinstance(checked, JSONResponse):
        return checked
    program, form, _, claims = checked
    services = _services(request)

    def read() -> JSONResponse:
        with services.db.session() as session:
            response = draft_of(session, services, form, str(claims["sub"]), program.id)
            if response is None:
                return JSONResponse({"answers": {}, "number": None})
            return JSONResponse({"answers": page_values(form, response.answers or {}),
                                 "number": reference_number(response.id)})

    return await run_in_threadpool(read)


@router.post("/{program_id}/hearing")
async def submit(request: Request, program_id: str) -> JSONResponse:
    checked = await _verified(request, program_id, answers=True)
    if isinstance(checked, JSONResponse):
        return checked
    program, form, body, claims = checked
    services = _services(request)
    answers, errors = parse_submission(form, body["answers"])
    if errors:
        return _error(422, "invalid_answers", "入力内容を確認してください。", "Some answers need fixing.",
                      errors=errors)

    def store() -> str:
        with services.db.session() as session:
            person = person_for_line_user(session, str(claims["sub"]), claims.get("name"))
            in_chat = draft_of(session, services, form, str(claims["sub"]), program.id)
            response = store_submission(session, form, person, answers, program.id, in_chat)
            return reference_number(response.id)

    number = await run_in_threadpool(store)
    return JSONResponse({"number": number, "message": form.completion_message.strip()})


def install(api: FastAPI) -> None:
    api.include_router(router)


PAGE = """<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<link rel="stylesheet" href="/static/liff.css">
<script type="application/json" id="liff-config">{{config}}</script>
<script charset="utf-8" src="https://static.line-scdn.net/liff/edge/2/sdk.js"></script>
<script src="/static/liff.js" defer></script>
</head>
<body>
<header>{{title}}</header>
<main>
<p id="status">読み込み中です…</p>
<form id="f" hidden></form>
</main>
</body>
</html>
"""
