"""Check the labeled question bank (benchmarks/questions/bank/*.jsonl).

Why: the bank is the ground truth every learned stage is trained and measured
on, so a label that does not point at the document's own text would silently
teach the ranker wrong answers. Each line must name its document, and an
in-scope question's `answer_span` must be an exact substring of that
document's raw text and contain one of its `expect_any` strings (compared as
the evaluation compares them: NFKC, no spaces, no commas). The span must
also point at one place: the evaluation labels every answer unit holding it as
gold, so a span found more than AMBIGUOUS_SPAN times in its document (「メール」,
「経営支援機関」) is a problem. And one question cannot be both in scope and out
of scope: the same wording (compared like the answers) labeled both ways is a
problem.

Usage: python benchmarks/questions/check_bank.py [bank files...]
Exit status 1 when any line is wrong; prints a per-file summary.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "benchmarks" / "questions" / "bank"
DOCUMENT_DIRS = (ROOT.parent / "shared" / "corpus", ROOT / "sample_kb")
STYLES = {"casual", "polite", "long", "typo", "loose_name", "no_name", "paraphrase", "terse"}
ANSWER_KINDS = {"amount", "date", "period", "count", "yes_no", "who", "where", "how", "what", "list", "condition",
                "other"}
OUT_OF_SCOPE_KINDS = {"adjacent_program", "unstated_fact", "other_edition", "advice", "unrelated"}
REQUIRED = ("id", "question", "document", "in_scope", "expect_any", "style")
AMBIGUOUS_SPAN = 3  # a span may repeat (a rule restated in a table); more than this points nowhere


def normalized(text: str) -> str:
    """The evaluation's comparison form: NFKC, without spaces and commas."""
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c not in " \u3000\t\n,")


def document_text(name: str) -> str | None:
    for folder in DOCUMENT_DIRS:
        path = folder / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def check_line(row: dict, texts: dict[str, str | None]) -> list[str]:
    problems = [f"missing field {f!r}" for f in REQUIRED if f not in row]
    if problems:
        return problems
    name = row["document"]
    if name not in texts:
        texts[name] = document_text(name)
    text = texts[name]
    if text is None:
        return [f"unknown document {name!r}"]
    if row["style"] not in STYLES:
        problems.append(f"style {row['style']!r} not one of {sorted(STYLES)}")
    if "kind" in row and row["kind"] not in ANSWER_KINDS:
        problems.append(f"kind {row['kind']!r} not one of {sorted(ANSWER_KINDS)}")
    if not str(row["question"]).strip():
        problems.append("empty question")
    if row["in_scope"]:
        span = row.get("answer_span")
        expect = row["expect_any"]
        if not span or not isinstance(span, str):
            problems.append("in-scope question without answer_span")
        elif span not in text:
            problems.append(f"answer_span not found verbatim in {name}: {span[:40]!r}")
        elif text.count(span) > AMBIGUOUS_SPAN:
            problems.append(f"answer_span {span[:40]!r} occurs {text.count(span)} times in {name}: "
                            "point at the line that answers")
        if not expect or not all(isinstance(e, str) and e for e in expect):
            problems.append("in-scope question needs a non-empty expect_any")
        elif span and not any(normalized(e) in normalized(span) for e in expect):
            problems.append("no expect_any string occurs in answer_span")
    else:
        if row.get("answer_span") or row["expect_any"]:
            problems.append("out-of-scope question must have no answer_span and empty expect_any")
        if row.get("out_of_scope_kind") not in OUT_OF_SCOPE_KINDS:
            problems.append(f"out_of_scope_kind must be one of {sorted(OUT_OF_SCOPE_KINDS)}")
    return problems


def contradictions(rows: list[dict]) -> list[str]:
    """Questions worded alike (compared as the answers are) but labeled both in and out of scope."""
    scope: dict[str, dict[bool, list[str]]] = {}
    for row in rows:
        key = normalized(str(row.get("question", ""))).rstrip("?？。")
        scope.setdefault(key, {}).setdefault(bool(row.get("in_scope")), []).append(str(row.get("id")))
    return [f"{', '.join(ids[True])} in scope but {', '.join(ids[False])} out of scope: {key!r}"
            for key, ids in scope.items() if len(ids) == 2]


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted(BANK.glob("*.jsonl"))
    texts: dict[str, str | None] = {}
    seen_ids: Counter[str] = Counter()
    failed = False
    total: Counter[str] = Counter()
    rows: list[dict] = []
    for path in files:
        counts: Counter[str] = Counter()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                print(f"{path.name}:{number}: not JSON ({exc.msg})")
                failed = True
                continue
            seen_ids[str(row.get("id"))] += 1
            rows.append(row)
            for problem in check_line(row, texts):
                print(f"{path.name}:{number} [{row.get('id')}]: {problem}")
                failed = True
            counts["in" if row.get("in_scope") else "out"] += 1
        share = counts["out"] / max(1, counts["in"] + counts["out"])
        print(f"{path.name}: {counts['in']} in scope, {counts['out']} out of scope ({share:.0%})")
        total.update(counts)
    for question_id, n in seen_ids.items():
        if n > 1:
            print(f"duplicate id {question_id!r} ({n} times)")
            failed = True
    for problem in contradictions(rows):
        print(f"contradiction: {problem}")
        failed = True
    print(f"total: {total['in'] + total['out']} questions, {total['out']} out of scope")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
