"""How long the support took, as experts type it: 「2時間」「90分」「1時間半」「10:00-12:00」「2.5h」."""

from __future__ import annotations

import re

from bot.text import normalize

_HOURS_MINUTES = re.compile(r"(?:(\d+(?:\.\d+)?)\s*(?:時間|h|hr|hours?))?\s*(半)?\s*(?:(\d+)\s*(?:分|m|min|minutes?))?")
_RANGE = re.compile(r"(\d{1,2})[:時](\d{2})?\s*分?\s*[~\-から]+\s*(\d{1,2})[:時](\d{2})?\s*分?(?:まで)?")


def parse_duration_minutes(text: str) -> int | None:
    """Minutes, or None when the text is not a duration. A bare number means minutes."""
    text = normalize(text).lower().replace("約", "").replace("くらい", "").replace("程度", "").strip()
    if not text:
        return None
    if re.fullmatch(r"\d{1,4}", text):
        return int(text)
    span = _RANGE.fullmatch(text)
    if span:
        start = int(span.group(1)) * 60 + int(span.group(2) or 0)
        end = int(span.group(3)) * 60 + int(span.group(4) or 0)
        return end - start if end > start else None
    match = _HOURS_MINUTES.fullmatch(text)
    if not match or not any(match.groups()) or (match.group(2) and not match.group(1)):
        return None
    hours = float(match.group(1) or 0)
    minutes = hours * 60 + (30 if match.group(2) else 0) + int(match.group(3) or 0)
    if not minutes.is_integer() and abs(minutes - round(minutes)) > 1e-9:
        return None
    return int(round(minutes))
