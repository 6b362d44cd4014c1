"""The FastAPI app: web chat page, the `/api/chat` contract, health and readiness.

`POST /api/chat` is what the web page, other clients and the tests script
against; its request and response models below are the documented contract
(see `/docs`). Bad requests get a 4xx with a clear Japanese message and an
English one, never a 500, and nothing already stored is touched.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import OperationalError as SQLAlchemyDatabaseError

from bot.engine import Engine
from bot.i18n import t
from bot.messages import InboundMessage, Location, Reply
from bot.programs import catalog_for
from bot.services import Services
from bot.settings import get_settings
from bot.text import too_long
from integrations import web_chat
from integrations.http_guards import MAX_BODY_BYTES
from integrations.web_identity import anonymous_code_refusal, chat_identity, client_of
from integrations import staff_console
from integrations.channels import liff
from integrations.channels import mount_channels
from integrations.http_guards import GuardMiddleware
from integrations.staff_inbox import UPLOAD_MAX_BYTES, UPLOAD_PATH, upload_admission
from bot.logging_setup import configure_logging
import anyio.to_thread
from bot.outbox import take_pending

STATIC_DIR = Path(__file__).resolve().parent / "static"

log = logging.getLogger(__name__)


class ChatLocation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90, description="緯度 / latitude")
    lon: float = Field(ge=-180, le=180, description="経度 / longitude")


class ChatRequest(BaseModel):
    """One user message. Send `text` (free text), `choice` (an option value) or `location`."""
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"user_id": "u-123", "text": "専門家派遣は年に何回まで使えますか？"}]},
    )
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\w.@:\-]+$")] | None = Field(
        default=None,
        description="Integrations only (needs `Authorization: Bearer` with a token of scope `chat`): the user "
                    "the message is from; the same id continues the same conversation. The web page sends "
                    "none: its visitor is the server-issued session cookie.",
    )
    text: str | None = Field(default=None, description="At most `MADOGUCHI_CHAT__MAX_MESSAGE_CHARS` characters (422 too_long).")
    choice: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, description="The `value` of an option from an earlier reply."
    )
    location: ChatLocation | None = None
    program: Annotated[str, StringConstraints(max_length=40, pattern=r"^[a-z][a-z0-9-]*$")] | None = Field(
        default=None, description="The program the page is for (`/p/<program>/`); none = the general page.")


class ProgramItem(BaseModel):
    id: str
    name: str
    label: str
    description: str
    default: bool
    url: str


class ProgramList(BaseModel):
    programs: list[ProgramItem]


class PendingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\w.@:\-]+$")]


class ChatOption(BaseModel):
    label: str
    value: str


class ChatLink(BaseModel):
    label: str
    url: str


class ChatReply(BaseModel):
    text: str
    options: list[ChatOption] = Field(default_factory=list)
    links: list[ChatLink] = Field(default_factory=list)
    free_input: bool = Field(default=False, description="A typed answer is expected; digits are not option picks.")
    citations: list[ChatLink] = Field(default_factory=list, description="Sources of the answer (read-only viewer).")
    asks_location: bool = Field(default=False, description="The reply waits for the user's location.")
    outcome: Literal["answered", "unsure", "outside", "other_edition", "which_program", "unavailable"] | None = Field(
        default=None, description="A program question's reply: answered (with its source), unsure (related excerpts "
                                  "and the offer of a person), outside (not what this window handles), other_edition "
                                  "(a fiscal year or round the documents are not), which_program, unavailable.")


class ChatResponse(BaseModel):
    replies: list[ChatReply]


class ErrorResponse(BaseModel):
    error: str
    message: str
    message_en: str
    detail: list[dict] | None = None


def create_app(services: Services | None = None) -> FastAPI:
    """Build the app; `madoguchi serve` calls this as a uvicorn factory."""
    if services is None:

        settings = get_settings()
        configure_logging(settings.log.level, settings.resolved_log_dir)
        services = Services.create()
    engine = Engine(services)
    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        """The outbox delivery worker runs while the server does. Request threads match the DB pool."""
        anyio.to_thread.current_default_thread_limiter().total_tokens = services.db.threads
        api.state.delivery.start()
        try:
            yield
        finally:
            api.state.delivery.stop()

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served below from the app's own copy of Swagger UI, not a CDN
        redoc_url=None,
        title="madoguchi API",
        version="1.0",
        description="窓口: chat API for Japanese SME-support programs. `POST /api/chat` is the stable contract.",
    )
    app.state.services = services
    app.state.engine = engine

    @app.middleware("http")
    async def request_context(request: Request, call_next):  # type: ignore[no-untyped-def]
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = await call_next(request)
        finally:
            structlog.contextvars.clear_contextvars()
        response.headers["x-request-id"] = request_id
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Our routes raise with {error, message, message_en}; keep that shape at the top level."""
        if isinstance(exc.detail, dict) and "error" in exc.detail:
            body = exc.detail
        else:
            body = {"error": "http_error", "message": "リクエストを処理できませんでした。",
                    "message_en": str(exc.detail)}
            if exc.status_code == 404:
                body = {"error": "not_found", "message": "ページが見つかりません。", "message_en": "Not found."}
            elif exc.status_code == 405:
                body = {"error": "method_not_allowed", "message": "この操作は使えません。",
                        "message_en": "Method not allowed."}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(SQLAlchemyDatabaseError)
    async def storage_error(_request: Request, exc: SQLAlchemyDatabaseError) -> JSONResponse:
        """A read-only or full disk, a database gone: the JSON 503 (clients retry later), not a plain 500."""
        log.error("storage unavailable: %s", type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__)
        return _error(503, "storage_unavailable", "ただいま保存ができないため、受け付けられません。しばらくしてからお試しください。",
                      "Storage unavailable; please try again later.")

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", "処理中に問題が発生しました。", "Internal error.")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        kinds = {e.get("type") for e in errors}
        if "json_invalid" in kinds:
            return _error(400, "malformed_json", "JSON の形式が正しくありません。", "Malformed JSON body.")
        detail = [{"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in errors]
        if "extra_forbidden" in kinds:
            return _error(422, "unknown_field", "不明な項目が含まれています。", "Unknown field in request.", detail)
        if "string_too_long" in kinds:
            return _error(422, "too_long", "入力が長すぎます。", "Input too long.", detail)
        return _error(422, "invalid_request", "入力内容を確認してください。", "Invalid request.", detail)

    @app.post("/api/chat", response_model=ChatResponse, tags=["chat"],
              responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
                         422: {"model": ErrorResponse}, 429: {"model": ErrorResponse}})
    def api_chat(body: ChatRequest, request: Request, response: Response) -> ChatResponse | JSONResponse:
        """Send one message (as the session's visitor, or as `user_id` with a `chat` token); get the replies."""
        has_text = bool(body.text and body.text.strip())
        if not has_text and not body.choice and body.location is None:
            return _error(422, "empty_message", "メッセージが空です。ご質問を入力してください。",
                          "Empty message: send text, a choice or a location.")
        limit = services.settings.chat.max_message_chars
        if too_long(body.text, limit):  # the engine's rule and limit, answered as an HTTP error
            return _error(422, "too_long", f"メッセージが長すぎます（{limit}文字まで）。",
                          f"Text too long (max {limit} characters).")
        catalog = catalog_for(services)
        if body.program is not None and catalog.get(body.program) is None:
            return _error(404, "unknown_program", "その事業の窓口はありません。", "No such program.")
        if body.program is not None and "web" not in catalog.programs[body.program].channels:
            return _error(404, "unknown_program", "その事業の窓口はありません。", "No web chat for this program.")
        identity = chat_identity(request, services, body.user_id, changes=True)
        if isinstance(identity, JSONResponse):
            return identity
        assert identity.user_id is not None
        client = client_of(request)
        refusal = anonymous_code_refusal(services, identity.user_id, body.text if has_text else None, client["ip"])
        if refusal is not None:  # a failed guess from nobody we know: answered, and no person is created
            return ChatResponse(replies=[ChatReply(text=t(f"account_code_{refusal}", services.settings.locale))])
        message = InboundMessage(
            client=client,
            channel="web",
            program=body.program,
            external_user_id=identity.user_id,
            text=body.text if has_text else None,
            choice=body.choice,
            location=Location(lat=body.location.lat, lon=body.location.lon) if body.location else None,
        )
        outcome = engine.process(message)
        if outcome.limited:
            limited = _error(429, "rate_limited", outcome.replies[0].text,
                             "Too many messages; please wait a minute and try again.")
            return limited
        return ChatResponse(replies=[_chat_reply(r) for r in outcome.replies])

    def pending_for(user_id: str | None) -> ChatResponse:
        if user_id is None:
            return ChatResponse(replies=[])
        with services.db.session() as session:
            replies = take_pending(session, "web", user_id)
        return ChatResponse(replies=[_chat_reply(r) for r in replies])

    @app.get("/api/chat/pending", response_model=ChatResponse, tags=["chat"])
    def api_pending(request: Request) -> ChatResponse | JSONResponse:
        """Messages waiting for this visitor (session cookie and its CSRF token) that were not replies (a visit
        to confirm, a staff answer). Each is returned once: it is marked delivered in the same transaction."""
        identity = chat_identity(request, services, None, create=False, changes=True)
        if isinstance(identity, JSONResponse):
            return identity
        return pending_for(identity.user_id)

    @app.post("/api/chat/pending", response_model=ChatResponse, tags=["chat"])
    def api_pending_for_user(body: PendingRequest, request: Request) -> ChatResponse | JSONResponse:
        """The same for an integration: `user_id` in the body, with a token of scope `chat`."""
        identity = chat_identity(request, services, body.user_id)
        if isinstance(identity, JSONResponse):
            return identity
        return pending_for(identity.user_id)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        """The database and the knowledge index are reachable."""
        checks = {"database": services.db.ping(), "index": _index_ready(services)}
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"status": "ready" if status == 200 else "not_ready", "checks": checks}, status)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        """The general page: with several programs it asks which one first (and still answers any question)."""
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-store"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        """Swagger UI, served from the app's own files (works offline)."""
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(web_chat.router)

    @app.get("/p/{program_id}", include_in_schema=False)
    def program_root(program_id: str) -> RedirectResponse:
        return RedirectResponse(f"/p/{program_id}/", status_code=308)

    @app.get("/p/{program_id}/", include_in_schema=False)
    def program_page(program_id: str) -> FileResponse:
        """One program's window: the same page; the conversation knows its program from this path."""
        program = catalog_for(services).get(program_id)
        if program is None or "web" not in program.channels:
            raise StarletteHTTPException(404)
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/api/programs", response_model=ProgramList, tags=["chat"])
    def api_programs() -> ProgramList:
        """The programs with a web window, for the general page's choice."""
        return ProgramList(programs=[
            ProgramItem(id=p.id, name=p.name, label=p.label, description=p.description.strip(), default=p.default,
                        url=f"/p/{p.id}/") for p in catalog_for(services) if "web" in p.channels])


    liff.install(app)

    for capability in services.capabilities:  # each capability's own routes, in the list's order
        if capability.routes is not None:
            app.include_router(capability.routes(services))
    staff_console.install(app, services)


    app.state.delivery = mount_channels(app, services, engine)


    app.add_middleware(GuardMiddleware, max_body_bytes=MAX_BODY_BYTES,  # outermost: before any route reads
                       path_limits={UPLOAD_PATH: (UPLOAD_MAX_BYTES + 64 * 1024, upload_admission(services))})
    return app


def _chat_reply(reply: Reply) -> ChatReply:
    """The reply as the page gets it (web_chat.page_reply, which the history uses too)."""
    return ChatReply.model_validate(web_chat.page_reply(reply))


def _index_ready(services: Services) -> bool:
    try:
        return services.knowledge.ping()
    except Exception:
        log.exception("index not ready")
        return False


def _error(status: int, code: str, message: str, message_en: str, detail: list | None = None) -> JSONResponse:  # type: ignore[type-arg]
    body = ErrorResponse(error=code, message=message, message_en=message_en, detail=detail)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)
