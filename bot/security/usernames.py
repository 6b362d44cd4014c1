"""One spelling per staff user name: `Bob`, `BOB`, ` bob` and full-width `ｂｏｂ` are the same account
(and share one lockout counter)."""

from __future__ import annotations

import unicodedata


def normalize_username(name: str) -> str:
    """NFKC, case-folded, surrounding white space removed."""
    return unicodedata.normalize("NFKC", name or "").casefold().strip()
