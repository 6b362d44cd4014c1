"""Spreadsheet cells that stay data: a value a user typed never becomes a formula in Excel or LibreOffice.

A text starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a live formula (or can start one)
when a CSV is opened, and `=...` is stored as a formula by openpyxl; such texts get a leading `'`
(OWASP's advice for CSV injection), and xlsx cells holding text are written with the string type.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """The value to write: texts that could start a formula are prefixed with `'`; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralize_row(row: list[Any]) -> list[Any]:
    return [neutralize(value) for value in row]


def append_row(sheet: Any, row: list[Any]) -> None:
    """`sheet.append`, with texts neutralized and typed as strings (never parsed as formulas)."""
    sheet.append([neutralize(value) for value in row])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
