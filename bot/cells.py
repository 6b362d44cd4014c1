"""Spreadsheet cells that stay data: a value a user typed never becomes a formula in Excel or LibreOffice.

A text starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a live formula (or can start one)
when a CSV is opened, and `=...` is stored as a formula by openpyxl; such texts get a leading `'`
(OWASP's advice for CSV injection), and xlsx cells holding text are written with the string type.
Every row goes through here, titles and header rows included (a header's labels come from a form file, which
is data too): `csv_bytes` for CSV, `append_row` for xlsx.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """The value to write: texts that could start a formula are prefixed with `'`; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralize_row(row: list[Any]) -> list[Any]:
    return [neutralize(value) for value in row]


def csv_bytes(rows: Iterable[list[Any]]) -> bytes:
    """Rows as CSV, every cell neutralized (None as empty), UTF-8 with BOM so Excel on a Japanese Windows PC
    opens it without mojibake."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(neutralize_row(["" if value is None else value for value in row]) for row in rows)
    return buffer.getvalue().encode("utf-8-sig")


def append_row(sheet: Any, row: list[Any]) -> None:
    """`sheet.append`, with texts neutralized and typed as strings (never parsed as formulas)."""
    sheet.append([neutralize(value) for value in row])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
