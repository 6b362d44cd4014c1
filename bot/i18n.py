"""User-facing strings by locale (Japanese first, English second).

The core's strings live in `bot/locales/<locale>.yaml`; each capability keeps
its own in `handlers/<capability>/locales/<locale>.yaml`, beside its code, and
registers that folder with `add_locale_dir` when its modules are imported.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DEFAULT_LOCALE = "ja"
_extra: dict[str, dict[str, str]] = {"ja": {}, "en": {}}
_locale_dirs: set[Path] = set()


@cache
def _load(locale: str) -> dict[str, str]:
    path = LOCALES_DIR / f"{locale}.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def add_strings(locale: str, strings: dict[str, str]) -> None:
    """Contribute strings for one locale (tests; capabilities use `add_locale_dir`)."""
    _extra.setdefault(locale, {}).update(strings)


def add_locale_dir(directory: Path) -> None:
    """Load a capability's `<locale>.yaml` files (once per folder)."""
    if directory in _locale_dirs:
        return
    for path in sorted(directory.glob("*.yaml")):
        add_strings(path.stem, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    _locale_dirs.add(directory)


def t(key: str, locale: str = DEFAULT_LOCALE, **values: object) -> str:
    """The string for `key` in `locale`, falling back to Japanese, then to the key itself."""
    for loc in (locale, DEFAULT_LOCALE):
        template = _extra.get(loc, {}).get(key) or _load(loc).get(key)
        if template is not None:
            return template.format(**values) if values else template
    return key
