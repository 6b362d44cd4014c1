"""Japanese-first text normalization, applied to every inbound text before matching.

NFKC folds full-width digits and letters (１２３ -> 123, ＡＢ -> AB) and
half-width katakana; the wave dashes 〜 and ～ become "~"; every run of
white space (including the ideographic space) becomes one ASCII space.
"""

from __future__ import annotations

import re
import unicodedata

_WAVE_DASHES = str.maketrans({"\u301c": "~", "\uff5e": "~", "\u2053": "~"})
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalize(text: str | None) -> str:
    """The canonical form of user text: NFKC, one kind of wave dash, single spaces, trimmed."""
    if not text:
        return ""
    text = _CONTROL.sub("", _ZERO_WIDTH.sub("", text))
    text = unicodedata.normalize("NFKC", text).translate(_WAVE_DASHES)
    return _SPACES.sub(" ", text).strip()


_CIRCLED = "".join(chr(c) for c in range(0x2460, 0x2474))  # ①..⑳
_PROTECT = str.maketrans({c: chr(0xE000 + i) for i, c in enumerate(_CIRCLED)})
_RESTORE = str.maketrans({chr(0xE000 + i): c for i, c in enumerate(_CIRCLED)})


def normalize_document(text: str | None) -> str:
    """`normalize` for document text, keeping circled numbers (①②…), which NFKC would turn into
    plain digits and so erase the numbering these documents are structured by."""
    return normalize((text or "").translate(_PROTECT)).translate(_RESTORE)


def compact(text: str) -> str:
    """Normalized with all spaces and thousands separators removed: for comparing answers."""
    return normalize(text).replace(" ", "").replace(",", "")


def has_meaningful_text(text: str) -> bool:
    """False for text made only of emoji, symbols and punctuation (nothing to answer)."""
    for char in text:
        category = unicodedata.category(char)
        if category[0] in ("L", "N"):
            return True
    return False


def too_long(text: str | None, limit: int) -> bool:
    """The one message-length rule (engine and web API): more than `limit` characters as sent."""
    return text is not None and len(text) > limit


_QUESTION_ENDINGS = re.compile(r"(\?|ですか|ますか|でしょうか|のか|とは|教えてください|知りたい)$")
_QUESTION_WORDS = re.compile(r"(とは何|どうすれば|どうやって|なぜ|いつまで|どこで|どのように|何回)")


def looks_like_question(text: str) -> bool:
    """A message that asks something rather than answers (inside a flow it goes to the FAQ handler)."""
    return bool(_QUESTION_ENDINGS.search(text.rstrip("。 "))) or bool(_QUESTION_WORDS.search(text))
