"""The bank checker (benchmarks/questions/check_bank.py) rejects labels that point nowhere or contradict."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _check_bank() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_bank", ROOT / "benchmarks" / "questions" / "check_bank.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _row(span: str, expect: list[str]) -> dict:
    return {"id": "t-1", "question": "謝金って時給いくら？", "document": "expert-dispatch-guide.md", "in_scope": True,
            "answer_span": span, "expect_any": expect, "style": "casual"}


def test_a_span_found_all_over_its_document_is_a_problem_and_the_answering_line_is_not() -> None:
    check = _check_bank()
    texts: dict[str, str | None] = {}
    guide = (ROOT / "sample_kb" / "expert-dispatch-guide.md").read_text(encoding="utf-8")
    assert guide.count("専門家") > check.AMBIGUOUS_SPAN
    problems = check.check_line(_row("専門家", ["専門家"]), texts)
    assert len(problems) == 1 and "occurs" in problems[0], problems
    assert check.check_line(_row("謝金は1時間あたり5,280円（税込）", ["5280円"]), texts) == []


def test_one_question_labeled_both_in_and_out_of_scope_is_a_contradiction() -> None:
    check = _check_bank()
    rows = [{"id": "a-1", "question": "レンタカーを使った場合、その料金は支給されますか。", "in_scope": True},
            {"id": "b-9", "question": "レンタカーを使った場合、その料金は支給されますか？", "in_scope": False},
            {"id": "c-2", "question": "宿泊費はいくらまで？", "in_scope": True},
            {"id": "d-3", "question": "宿泊費は いくらまで", "in_scope": True}]
    (problem,) = check.contradictions(rows)
    assert "a-1 in scope but b-9 out of scope" in problem


def test_an_answer_kind_outside_the_briefs_list_is_a_problem() -> None:
    check = _check_bank()
    texts: dict[str, str | None] = {}
    row = _row("謝金は1時間あたり5,280円（税込）", ["5280円"])
    assert check.check_line({**row, "kind": "amount"}, texts) == []
    (problem,) = check.check_line({**row, "kind": "which"}, texts)
    assert "kind 'which'" in problem
