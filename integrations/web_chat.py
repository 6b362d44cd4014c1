"""The web chat's server side beyond `POST /api/chat`: who the browser is, the conversation so far,
live delivery, the first screen and the read-only source viewer.

- **Identity**: the visitor is the server-issued session in an HttpOnly, SameSite=Strict cookie
  (`integrations.web_identity`); the history and the live updates use it, nothing identifying goes in a URL.
- **History** (`GET /api/chat/history`): the conversation in the order it happened (what the user sent,
  the bot's replies, and staff answers or confirmations delivered later), with the question still
  waiting for an answer shown again at the end, so a reload mid-hearing or mid-checkout shows what the
  next text will answer. Only the last reply's buttons are marked live.
- **Live delivery** (`GET /api/chat/events`): server-sent events carrying staff answers and visit
  confirmations as soon as they are queued (each delivered once, as the old polling did).
- **First screen** (`GET /api/chat/welcome`): the greeting, a few example questions drawn from the
  knowledge base's FAQ entries, and the menu.
- **Sources** (`GET /sources/view`): the cited section of a manual, read-only, from the index.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bot.handler import main_menu
from bot.i18n import t
from bot.messages import Reply
from bot.services import Services
from bot.storage.models import (
    ChannelIdentity,
    Conversation,
    KnowledgeChunk,
    KnowledgeSource,
    Message,
    OutboundMessage,
)
from integrations.web_identity import chat_identity, set_session_cookie
from bot.programs import catalog_for
from urllib.parse import urlencode
from bot.outbox import take_pending

EVENTS_POLL_S = 0.5
EVENTS_MAX_S = 300  # a stream ends after this; the browser's EventSource reconnects by itself
HISTORY_LIMIT = 200
EXAMPLES = 4
LOCATION_OPTION_VALUES = frozenset({"visits:noloc"})

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
router = APIRouter()


# ------------------------------------------------------------------ identity
def visitor(request: Request) -> tuple[str | None, str | None]:
    """The page's visitor from the server-issued session cookie (see `integrations.web_identity`) and the
    session's CSRF token (None, None without a live session: reading never makes one)."""

    identity = chat_identity(request, _services(request), None)
    if isinstance(identity, Response):
        return None, None
    return identity.user_id, identity.csrf


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


# ------------------------------------------------------------------ replies for the page
def citations_of(reply: Reply | dict[str, Any]) -> list[dict[str, str]]:
    """The sources an answer cited, each once, with the viewer's URL."""
    meta = reply.meta if isinstance(reply, Reply) else (reply.get("meta") or {})
    seen: dict[str, dict[str, str]] = {}
    for citation in meta.get("citations") or []:
        if not isinstance(citation, dict):
            continue
        label = str(citation.get("label") or citation.get("title") or "")
        source = str(citation.get("source") or "")
        if not label or not source or label in seen:
            continue

        query = {"source": source, "section": str(citation.get("section") or "")}
        seen[label] = {"label": label, "url": "/sources/view?" + urlencode(query)}
    return list(seen.values())


def asks_location(reply: Reply | dict[str, Any]) -> bool:
    """The reply waits for a location (the visits flow's check-in/out): the page shows its 📍 button."""
    data = reply.model_dump() if isinstance(reply, Reply) else reply
    if (data.get("meta") or {}).get("expects") == "location":
        return True
    return any(o.get("value") in LOCATION_OPTION_VALUES for o in data.get("options") or [])


def page_reply(reply: Reply | dict[str, Any]) -> dict[str, Any]:
    data = reply.model_dump(mode="json") if isinstance(reply, Reply) else dict(reply)
    # `outcome` (a knowledge answer's: answered, unsure, outside, ...) says what the user was told, whatever
    # the wording; the page marks the bubble with it.
    return {"text": data.get("text", ""), "options": data.get("options") or [], "links": data.get("links") or [],
            "free_input": bool(data.get("free_input")), "citations": citations_of(data),
            "asks_location": asks_location(data), "outcome": (data.get("meta") or {}).get("outcome")}


# ------------------------------------------------------------------ history
def history(services: Services, user_id: str, program: str | None = None) -> dict[str, Any]:
    """The conversation as the page shows it, oldest first: the one at this page's entry point (`/p/<program>/`,
    or the general page)."""
    with services.db.session() as session:
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.channel == "web", ChannelIdentity.external_user_id == user_id)).scalar_one_or_none()
        if identity is None:
            return {"items": [], "flow": None}
        conversation = session.execute(select(Conversation).where(
            Conversation.person_id == identity.person_id, Conversation.channel == "web",
            Conversation.program == (program or ""))).scalar_one_or_none()
        events: list[tuple[Any, int, dict[str, Any]]] = []
        if conversation is not None:
            rows = list(session.execute(select(Message).where(Message.conversation_id == conversation.id)
                                        .order_by(Message.id.desc()).limit(HISTORY_LIMIT)).scalars())
            for row in reversed(rows):
                payload = row.payload or {}
                if row.direction == "in":
                    item = {"who": "me", "text": row.text or "", "choice": payload.get("choice"),
                            "location": bool(payload.get("location"))}
                else:
                    item = {"who": "bot", "handler": row.handler, **page_reply(payload.get("reply") or {"text": row.text})}
                events.append((row.created_at, row.id, item))
        delivered = session.execute(select(OutboundMessage).where(
            OutboundMessage.channel == "web", OutboundMessage.external_user_id == user_id,
            OutboundMessage.status == "sent").order_by(OutboundMessage.id.desc()).limit(HISTORY_LIMIT)).scalars()
        for sent in delivered:
            for reply in (sent.payload or {}).get("replies", []):
                events.append((sent.sent_at or sent.created_at, 0, {"who": "bot", "pushed": True, **page_reply(reply)}))
        if not events:
            # Nothing said or sent at this entry point yet (a visitor of `/` opening /p/<id>/ for the first time):
            # the page shows its first screen from /api/chat/welcome (the program's examples), not a bare history.
            return {"items": [], "flow": None}
        events.sort(key=lambda e: (e[0], e[1]))
        items = [item for _, _, item in events]
        flow = conversation.active_flow if conversation is not None else None
        # The first screen the user saw (greeting and menu, shown by the page, never sent) comes first.
        locale = services.settings.locale
        first_screen = Reply(text=t("welcome", locale), options=main_menu(services, locale, None, program))
        items.insert(0, {"who": "bot", **page_reply(first_screen)})
        _label_choices(items)
        if flow:
            _show_pending_again(items, flow)
        for item in items:
            item.pop("handler", None)
            item["live"] = False
        if items and items[-1]["who"] == "bot":
            items[-1]["live"] = True
        return {"items": items, "flow": flow}


def _label_choices(items: list[dict[str, Any]]) -> None:
    """A pressed button is shown as its label (「👍 解決した」), never its value (`feedback:up`)."""
    labels: dict[str, str] = {}
    for item in items:
        if item["who"] == "bot":
            labels.update({o["value"]: o["label"] for o in item.get("options") or []})
        elif item.get("choice") and not item.get("text"):
            item["text"] = labels.get(item["choice"], "（ボタンを選択）")
        if item["who"] == "me" and item.pop("location", False) and not item.get("text"):
            item["text"] = "📍 現在地を送信しました"
        item.pop("choice", None)


def _show_pending_again(items: list[dict[str, Any]], flow: str) -> None:
    """In a flow, the last thing the flow asked is the question the next message answers: repeat it
    at the end when something else (a staff answer, an answered side question) came after it."""
    for index in range(len(items) - 1, -1, -1):
        item = items[index]
        if item["who"] == "bot" and item.get("handler") == flow:
            if index != len(items) - 1:
                items.append({**item, "again": True})
            return


# ------------------------------------------------------------------ welcome
_examples_cache: tuple[float, tuple[object, ...], list[str]] | None = None


def example_questions(services: Services, limit: int = EXAMPLES, program: str | None = None) -> list[str]:
    """A few short questions the knowledge base answers from its FAQ entries, one per source first (on a
    program's page, only from the sources that answer there)."""
    global _examples_cache

    sources = catalog_for(services).source_filter(program)
    with services.db.session() as session:
        signature = tuple(session.execute(select(KnowledgeSource.id, KnowledgeSource.content_hash)
                                          .order_by(KnowledgeSource.id)).all()) + (program,)
        if _examples_cache and _examples_cache[1] == signature and time.monotonic() - _examples_cache[0] < 300:
            return _examples_cache[2]
        rows: list[tuple[int, str]] = [(sid, text) for sid, text in session.execute(
            select(KnowledgeChunk.source_id, KnowledgeChunk.text).where(KnowledgeChunk.kind == "faq")
            .order_by(KnowledgeChunk.source_id, KnowledgeChunk.ordinal)).all()]
        paths = dict(session.execute(select(KnowledgeSource.id, KnowledgeSource.path)).all())
    if sources is not None:
        rows = [(sid, text) for sid, text in rows if sources.allows(paths.get(sid, ""))]
    by_source: dict[int, list[str]] = {}
    for source_id, text in rows:
        question = text.split("\n", 1)[0].removeprefix("Q:").strip()
        if 6 <= len(question) <= 32:
            by_source.setdefault(source_id, []).append(question)
    picked: list[str] = []
    queues = list(by_source.values())
    while queues and len(picked) < limit:
        for queue in list(queues):
            if queue:
                question = queue.pop(0)
                if question not in picked:
                    picked.append(question)
            if not queue:
                queues.remove(queue)
            if len(picked) >= limit:
                break
    _examples_cache = (time.monotonic(), signature, picked)
    return picked


# ------------------------------------------------------------------ routes
def _program(services: Services, program: str | None) -> str | None:
    """The page's program if it is one with a web window; anything else is the general page."""
    found = catalog_for(services).get(program)
    return found.id if found is not None and "web" in found.channels else None


def _program_named(services: Services, program: str | None) -> dict[str, str] | None:
    """The page's program as the page names it in its header (None on the general page)."""
    return {"id": program, "label": catalog_for(services).programs[program].label} if program else None


ProgramQuery = Query(default=None, max_length=40, pattern=r"^[a-z][a-z0-9-]*$",
                     description="The page's program (`/p/<program>/`); none = the general page.")


@router.post("/api/chat/session", tags=["chat"], responses={429: {"description": "Too many new sessions "
                                                                    "(per address or overall); see Retry-After."}})
def api_session(request: Request, response: Response) -> Any:
    """Open this browser's session (the HttpOnly cookie) if it has no live one, and give its CSRF token, which
    the page sends back in `X-CSRF-Token` with every message. The page calls it just before its first message."""
    services = _services(request)
    identity = chat_identity(request, services, None, create=True)
    if isinstance(identity, Response):
        return identity
    set_session_cookie(response, identity, services)
    response.headers["Cache-Control"] = "no-store"
    return {"csrf": identity.csrf}


@router.get("/api/chat/history", tags=["chat"])
def api_history(request: Request, response: Response, program: str | None = ProgramQuery) -> dict[str, Any]:
    """This browser's conversation so far at this page's entry point (the cookie says whose), oldest first,
    and the session's CSRF token (null before the first message: no session is made by reading)."""
    user_id, csrf = visitor(request)
    services = _services(request)
    program = _program(services, program)
    past = history(services, user_id, program) if user_id else {"items": [], "flow": None}
    response.headers["Cache-Control"] = "no-store"
    return past | {"csrf": csrf, "program": _program_named(services, program)}


@router.get("/api/chat/welcome", tags=["chat"])
def api_welcome(request: Request, program: str | None = ProgramQuery) -> dict[str, Any]:
    """The first screen: greeting, example questions from the knowledge base, and the menu. On the general
    page of an installation with several programs, also the programs to choose from (each its own page)."""

    services = _services(request)
    locale = services.settings.locale
    program = _program(services, program)
    catalog = catalog_for(services)
    choices = [{"id": p.id, "label": p.label, "url": f"/p/{p.id}/"} for p in catalog if "web" in p.channels]
    return {"text": t("welcome", locale), "examples": example_questions(services, program=program),
            "options": [o.model_dump() for o in main_menu(services, locale, None, program)],
            "program": _program_named(services, program),
            "programs": choices if program is None and len(choices) > 1 else []}


@router.get("/api/chat/events", tags=["chat"], response_class=StreamingResponse)
async def api_events(request: Request) -> Response:
    """Server-sent events: `replies` events with messages for this browser that answer nothing it sent
    (a staff answer, a visit to confirm). Each message is delivered once."""
    user_id, _ = visitor(request)
    services = _services(request)
    if user_id is None:  # no session yet: an empty stream; the browser reconnects after `retry`
        return StreamingResponse(iter(["retry: 3000\n\n"]), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    def take() -> list[dict[str, Any]]:
        with services.db.session() as session:
            return [page_reply(r) for r in take_pending(session, "web", user_id)]

    async def stream():  # type: ignore[no-untyped-def]
        yield "retry: 1000\n\n"
        started = last_beat = time.monotonic()
        while time.monotonic() - started < EVENTS_MAX_S:
            if await request.is_disconnected():
                return
            replies = await run_in_threadpool(take)
            if replies:
                yield f"event: replies\ndata: {json.dumps({'replies': replies}, ensure_ascii=False)}\n\n"
            elif time.monotonic() - last_beat > 15:
                last_beat = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(EVENTS_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/sources/view", include_in_schema=False)
def source_view(request: Request, source: str = Query(max_length=300), section: str = Query("", max_length=1000)
                ) -> HTMLResponse:
    """A cited section of a manual or FAQ, read-only (what the answer was taken from)."""
    services = _services(request)
    with services.db.session() as session:
        row = session.execute(select(KnowledgeSource).where(KnowledgeSource.name == source)
                              .order_by(KnowledgeSource.id.desc()).limit(1)).scalar_one_or_none()
        if row is None:
            return TEMPLATES.TemplateResponse(request, "source.html", {"source": None, "section": section,
                                                                      "chunks": []}, status_code=404)
        chunks = list(session.execute(select(KnowledgeChunk).where(KnowledgeChunk.source_id == row.id)
                                      .order_by(KnowledgeChunk.ordinal)).scalars())
        in_section = [c for c in chunks if section and c.section == section]
        if not in_section and section:
            in_section = [c for c in chunks if c.section.startswith(section) or section.startswith(c.section)]
        shown = in_section or chunks[:20]
        context = {"source": {"title": row.title, "name": row.name, "ingested_at": row.ingested_at},
                   "section": section, "found": bool(in_section),
                   "chunks": [{"section": c.section, "page": c.page, "text": c.text} for c in shown]}
        return TEMPLATES.TemplateResponse(request, "source.html", context)
