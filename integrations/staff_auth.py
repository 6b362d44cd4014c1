"""Who may call the staff API: a bearer token, compared in constant time.

Staff systems (the secretariat's spreadsheet import, the call-center tools)
authenticate with `Authorization: Bearer <token>`. A missing or wrong token
is 401 with a Japanese and an English message; when no token is configured
the staff API is closed rather than open.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.services import Services

_bearer = HTTPBearer(auto_error=False, description="Staff API token (MADOGUCHI STAFF_API_TOKEN)")


class StaffAuthError(HTTPException):
    def __init__(self, code: str, message: str, message_en: str) -> None:
        super().__init__(status_code=401, detail={"error": code, "message": message, "message_en": message_en},
                         headers={"WWW-Authenticate": "Bearer"})


def require_staff(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """FastAPI dependency: the caller holds the staff API token. Returns an actor label for the audit trail."""
    services: Services = request.app.state.services
    configured = services.settings.staff_api_token
    if configured is None or not configured.get_secret_value():
        raise StaffAuthError("staff_api_disabled", "スタッフ用APIは設定されていません。",
                             "The staff API is not configured (STAFF_API_TOKEN).")
    if credentials is None:
        raise StaffAuthError("unauthorized", "認証が必要です。", "Authentication required.")
    if not hmac.compare_digest(credentials.credentials.encode(), configured.get_secret_value().encode()):
        raise StaffAuthError("unauthorized", "認証に失敗しました。", "Invalid token.")
    return "staff-api-token"
