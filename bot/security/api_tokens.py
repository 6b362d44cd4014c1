"""Staff API tokens: random, shown once, stored as SHA-256, limited to scopes, revocable.

Scopes name what a token may do: `hearings:read`, `visits:read`, `chat` (talk on `/api/chat` as any
`user_id`: integrations and tests), or `*`.
The bootstrap `MADOGUCHI_STAFF__API_TOKEN` from the settings (for a first deployment,
before any token is created) counts as `*`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage import audit
from bot.storage.models import utcnow
from bot.security.models import ApiToken

SCOPES = ("hearings:read", "visits:read", "chat", "*")
PREFIX = "mdg_"


class TokenError(ValueError):
    pass


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(session: Session, name: str, scopes: list[str], programs: list[str] | None = None
           ) -> tuple[ApiToken, str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise TokenError(f"スコープは {', '.join(SCOPES)} から選んでください（指定: {', '.join(scopes) or 'なし'}）")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name.strip()[:100] or "token", token_hash=_hash(token), scopes=list(scopes),
                   programs=list(programs) if programs else None)
    session.add(row)
    session.flush()
    audit.record(session, "api_token.created", subject_type="api_token", subject_id=row.id,
                 data={"name": row.name, "scopes": row.scopes, "programs": row.programs})
    return row, token


def revoke(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise TokenError(f"トークン ID {token_id} はありません")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, "api_token.revoked", subject_type="api_token", subject_id=row.id)
    return row


class OutOfScope(TokenError):
    """A valid token used for something it was not given (403, not 401)."""


def authorize(session: Session, presented: str, scope: str, bootstrap: str | None) -> str | None:
    """The actor label when `presented` may use `scope`; None when it is no (longer a) token;
    OutOfScope when it is a token without that scope."""
    if bootstrap and hmac.compare_digest(presented.encode(), bootstrap.encode()):
        return "bootstrap-token"
    row = session.execute(select(ApiToken).where(ApiToken.token_hash == _hash(presented))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    if scope not in row.scopes and "*" not in row.scopes:
        raise OutOfScope(scope)
    row.last_used_at = utcnow()
    return f"api-token:{row.id}:{row.name}"


def programs_of(session: Session, presented: str, bootstrap: str | None) -> list[str] | None:
    """The programs listed on an (authorized) token: ["*"] for the bootstrap token, which reads everything."""
    if bootstrap and hmac.compare_digest(presented.encode(), bootstrap.encode()):
        return ["*"]
    row = session.execute(select(ApiToken).where(ApiToken.token_hash == _hash(presented))).scalar_one_or_none()
    return list(row.programs or []) if row is not None else []
