"""User-facing strings by locale (Japanese first, English second).

Strings live in `bot/locales/<locale>.yaml`; handlers may register their own
strings with `add_strings` so a capability keeps its wording beside its code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DEFAULT_LOCALE = "ja"
_extra: dict[str, dict[str, str]] = {"ja": {}, "en": {}}


@cache
def _load(locale: str) -> dict[str, str]:
    path = LOCALES_DIR / f"{locale}.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def add_strings(locale: str, strings: dict[str, str]) -> None:
    """Let a handler module contribute its own strings."""
    _extra.setdefault(locale, {}).update(strings)


def t(key: str, locale: str = DEFAULT_LOCALE, **values: object) -> str:
    """The string for `key` in `locale`, falling back to Japanese, then to the key itself."""
    for loc in (locale, DEFAULT_LOCALE):
        template = _extra.get(loc, {}).get(key) or _load(loc).get(key)
        if template is not None:
            return template.format(**values) if values else template
    return key
