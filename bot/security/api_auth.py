"""Who may call the staff API: a bearer token with the route's scope.

The capabilities' HTTP routes (`handlers/<capability>/routes.py`) declare these dependencies, so they live
in the core: a capability never imports an integration.

Tokens are created with `madoguchi tokens create --scope ...` (stored hashed,
revocable); the settings' `MADOGUCHI_STAFF__API_TOKEN` is a bootstrap token with every
scope. No token or an unknown/revoked one is 401, a token without the scope
403, each with a Japanese and an English message. With no token configured
at all the staff API is closed rather than open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sqlalchemy.orm import Session

from bot.programs import catalog_for, may_see
from bot.programs import token_programs as resolve
from bot.security import api_tokens
from bot.services import Services

_bearer = HTTPBearer(auto_error=False, description="Staff API token (madoguchi tokens create)")


class StaffAuthError(HTTPException):
    def __init__(self, code: str, message: str, message_en: str, status: int = 401) -> None:
        super().__init__(status_code=status, detail={"error": code, "message": message, "message_en": message_en},
                         headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


def require_scope(scope: str) -> Callable[..., str]:
    """A FastAPI dependency: the caller's token carries `scope`. Returns an actor label for the audit trail."""

    def dependency(request: Request,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
        services: Services = request.app.state.services
        if credentials is None:
            raise StaffAuthError("unauthorized", "認証が必要です。", "Authentication required.")
        bootstrap = services.settings.staff.api_token
        with services.db.session() as session:
            try:
                actor = api_tokens.authorize(session, credentials.credentials, scope,
                                             bootstrap.get_secret_value() if bootstrap else None)
            except api_tokens.OutOfScope:
                raise StaffAuthError("forbidden", "このトークンでは利用できません。",
                                     f"Token lacks scope {scope}.", status=403) from None
            if actor is not None:  # which programs' records this token may read (routes filter by it)
                request.state.token_programs = api_tokens.programs_of(
                    session, credentials.credentials, bootstrap.get_secret_value() if bootstrap else None)
        if actor is None:
            raise StaffAuthError("unauthorized", "認証に失敗しました。", "Invalid or revoked token.")
        return actor

    return dependency


def token_programs(request: Request) -> set[str] | None:
    """The programs the authorized token may read (None = all); call after `require_scope` ran."""
    return resolve(getattr(request.state, "token_programs", None), catalog_for(request.app.state.services))


def services_of(request: Request) -> Services:
    """The process's services, as the web app stored them."""
    return request.app.state.services  # type: ignore[no-any-return]


class _OfAProgram(Protocol):
    @property
    def program(self) -> str | None: ...


Row = TypeVar("Row", bound=_OfAProgram)


def visible_or_404(request: Request, session: Session, model: type[Row], row_id: int,
                   message: str, message_en: str) -> Row:
    """The row, if it exists and is of a program the token may read; else 404 (another program's record does
    not exist to the caller)."""
    row = session.get(model, row_id)
    if row is None or not may_see(token_programs(request), row.program, catalog_for(services_of(request))):
        raise HTTPException(404, detail={"error": "not_found", "message": message, "message_en": message_en})
    return row
