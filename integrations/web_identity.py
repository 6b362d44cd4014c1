"""Who is talking on `/api/chat`: the web page's visitor (a server-issued session cookie) or an
integration holding an API token of scope `chat` (which names the `user_id` in the body).

A body `user_id` without such a token is refused: a client never chooses whose conversation it is.
A session is made only by `POST /api/chat/session` (the page calls it before its first message), counted
per client address and overall; reading the page, its history or its live updates makes none.
A request of the page that changes something (a message, taking the pending ones) also carries the
session's CSRF token in `X-CSRF-Token` (the page gets it with its history): without it, 403. (The cookie
is SameSite=Strict too; the token does not depend on the browser honouring that.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from bot.security import api_tokens
from bot.security import web_sessions
from bot.services import Services
from bot.storage.models import ChannelIdentity
from handlers.accounts import link_codes


@dataclass
class ChatIdentity:
    user_id: str | None  # None: a visitor without a session yet (and none was asked for)
    new_token: str | None = None  # set the cookie with this on the response
    csrf: str | None = None  # the session's CSRF token, for the page


CSRF_REFUSAL = {"error": "csrf", "message": "画面の有効期限が切れました。ページを開き直してください。",
                "message_en": "Missing or invalid CSRF token: reload the page."}


SESSION_REFUSAL = {"error": "rate_limited",
                   "message": "ただいま混み合っています。しばらくしてからもう一度お試しください。",
                   "message_en": "Too many new chat sessions; retry after the time in Retry-After."}


def _refusal(status: int, code: str, message: str, message_en: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, "message_en": message_en}, status_code=status,
                        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


def chat_identity(request: Request, services: Services, body_user_id: str | None,
                  create: bool = False, changes: bool = False) -> ChatIdentity | JSONResponse:
    """`changes`: the request changes something: a page's request needs its session and its CSRF token
    (an integration's bearer token is never sent by a browser on its own, so it needs none).
    `create`: a visitor without a live session gets one (`POST /api/chat/session` only, just before the page
    sends its first message), within the per-address and overall limits (else 429 with Retry-After)."""
    authorization = request.headers.get("authorization", "")
    if authorization:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _refusal(401, "unauthorized", "認証に失敗しました。", "Invalid authorization header.")
        bootstrap = services.settings.staff.api_token
        with services.db.session() as session:
            try:
                actor = api_tokens.authorize(session, presented.strip(), "chat",
                                             bootstrap.get_secret_value() if bootstrap else None)
            except api_tokens.OutOfScope:
                return _refusal(403, "forbidden", "このトークンでは利用できません。", "Token lacks scope chat.")
        if actor is None:
            return _refusal(401, "unauthorized", "認証に失敗しました。", "Invalid or revoked token.")
        if not body_user_id:
            return _refusal(422, "invalid_request", "user_id を指定してください。",
                            "With a token, name the user_id.")
        return ChatIdentity(body_user_id)
    if body_user_id is not None:
        return _refusal(401, "user_id_needs_token", "user_id の指定には chat 権限のトークンが必要です。",
                        "A user_id in the body needs an API token of scope chat.")
    max_age = timedelta(days=services.settings.web.session_days)
    cookie = request.cookies.get(web_sessions.COOKIE)
    with services.db.session() as session:
        user_id = web_sessions.resolve(session, cookie, max_age)
        if changes and (user_id is None
                        or not web_sessions.csrf_matches(cookie, request.headers.get(web_sessions.CSRF_HEADER))):
            return JSONResponse(CSRF_REFUSAL, status_code=403)
        if user_id is not None or not create:
            return ChatIdentity(user_id, csrf=web_sessions.csrf_of(cookie) if user_id and cookie else None)
        limits = services.settings.limits
        wait = web_sessions.admit_start(session, client_of(request)["ip"], limits.web_sessions_per_ip,
                                        limits.web_sessions_global)
        if wait is not None:
            return JSONResponse(SESSION_REFUSAL, status_code=429, headers={"Retry-After": str(wait)})
        token, user_id = web_sessions.start(session)
    return ChatIdentity(user_id, token, csrf=web_sessions.csrf_of(token))


def client_of(request: Request) -> dict[str, str]:
    """The address (as the trusted proxy reports it) and browser of a web-chat request."""
    return {"ip": request.client.host if request.client else "",
            "user_agent": request.headers.get("user-agent", "")[:300]}


def anonymous_code_refusal(services: Services, user_id: str, text: str | None, client_ip: str) -> str | None:
    """A link-code guess from a web visitor the bot does not know yet: refused (and counted per address and
    overall) before any person is created for it. None: not a code, a known visitor, or a good code."""
    if not text:
        return None
    settings = services.settings
    with services.db.session() as session:
        known = session.execute(select(ChannelIdentity.id).where(
            ChannelIdentity.channel == "web", ChannelIdentity.external_user_id == user_id)).first() is not None
        return link_codes.refuse_anonymous(session, text, known, client_ip, settings.limits.link_code_failures_per_ip,
                                           settings.limits.link_code_failures_global)


def set_session_cookie(response: Response, identity: ChatIdentity, services: Services) -> None:
    if identity.new_token:
        response.set_cookie(web_sessions.COOKIE, identity.new_token, httponly=True, samesite="strict",
                            secure=services.settings.web.public_base_url.startswith("https://"), path="/",
                            max_age=services.settings.web.session_days * 86400)
