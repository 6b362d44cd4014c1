"""Add the existing question sets to the labeled bank (benchmarks/questions/bank/legacy-*.jsonl).

Why: the older sets (dev, reworded, fresh, blind1-8, sample_kb) are labeled with a source document and
`expect_any` only; the bank also wants the exact `answer_span` the answer is read from, so the learned
ranker can be trained on where the answer is, not only on what it says.

For an in-scope question the span is the shortest substring of one line of the source document that
contains an `expect_any` string (compared as the evaluation compares: NFKC, no spaces, no commas). When
the string occurs on several lines, the line sharing the most characters with the question is taken
(a plain, general tie-break; no question is looked at by hand). Questions with no such line are reported
and left out. Out-of-scope questions name no document; each is given one of the corpus documents in turn
(it only decides the leave-one-document-out fold it is tested in) and an `out_of_scope_kind` guessed from
general words (a fiscal year → other_edition, 補助金/助成金 → adjacent_program, 税/法/保険 → advice, else
unrelated). Every converted question is style "paraphrase".

    python benchmarks/questions/legacy_to_bank.py [--dev ../shared/eval/dev.jsonl]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ROOT / "benchmarks" / "questions"
BANK = QUESTIONS / "bank"
CORPUS = ROOT.parent / "shared" / "corpus"
DOCUMENT_DIRS = (CORPUS, ROOT / "sample_kb")
LEGACY_SETS = ["corpus_reworded", "corpus_fresh"] + [f"corpus_blind{n}" for n in ("", 2, 3, 4, 5, 6, 7, 8)] + ["sample_kb"]

_EDITION = re.compile(r"(?:令和|平成)\s*\d+\s*年度|\d{4}\s*年度|[0-9一二三四]次公募|去年|昨年|来年")
_PROGRAM = re.compile(r"補助金|助成金|給付金")
_ADVICE = re.compile(r"税|法|保険|ビザ|賃金|インボイス|申告|相続")


def normalized(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c not in " \u3000\t\n,")


def shortest_span(line: str, target: str) -> str | None:
    """The shortest substring of `line` whose normalized form contains `target` (already normalized)."""
    if target not in normalized(line):
        return None
    best: str | None = None
    for start in range(len(line)):
        if target not in normalized(line[start:]):
            break
        for end in range(start + 1, len(line) + 1):
            if best is not None and end - start >= len(best):
                break
            if target in normalized(line[start:end]):
                best = line[start:end]
                break
    return best


def find_span(document: str, question: str, expect_any: list[str]) -> str | None:
    chars = set(normalized(question))
    found: list[tuple[int, int, str]] = []
    for line in document.splitlines():
        for expect in expect_any:
            span = shortest_span(line, normalized(expect))
            if span:
                found.append((len(chars & set(normalized(line))), -len(span), span))
    return max(found)[2] if found else None


def out_of_scope_kind(question: str) -> str:
    if _EDITION.search(question):
        return "other_edition"
    if _PROGRAM.search(question):
        return "adjacent_program"
    if _ADVICE.search(question):
        return "advice"
    return "unrelated"


def document_text(name: str) -> str | None:
    for folder in DOCUMENT_DIRS:
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    return None


def convert(set_name: str, rows: list[dict], corpus_documents: list[str]) -> tuple[list[dict], list[str]]:
    out, skipped = [], []
    for row in rows:
        qid = f"legacy-{set_name}-{row['id']}"
        if row.get("in_scope", True):
            name = row.get("source")
            text = document_text(name) if name else None
            span = find_span(text, row["question"], row["expect_any"]) if text else None
            if span is None:
                skipped.append(f"{qid}: no line of {name} holds {row['expect_any']}")
                continue
            out.append({"id": qid, "question": row["question"], "document": name, "in_scope": True,
                        "answer_span": span, "expect_any": row["expect_any"], "style": "paraphrase",
                        "fact": f"{set_name}:{row['id']}", "kind": "other"})
        else:
            # A stable, spread assignment of the fold (document) an out-of-scope question is tested in.
            digest = int(hashlib.sha256(qid.encode()).hexdigest(), 16)
            name = row.get("source") or corpus_documents[digest % len(corpus_documents)]
            out.append({"id": qid, "question": row["question"], "document": name, "in_scope": False,
                        "answer_span": None, "expect_any": [], "style": "paraphrase",
                        "out_of_scope_kind": out_of_scope_kind(row["question"])})
    return out, skipped


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dev", default=str(ROOT.parent / "shared" / "eval" / "dev.jsonl"))
    args = parser.parse_args(argv)
    corpus_documents = sorted(p.name for p in CORPUS.glob("*.md"))
    sources = [(name, QUESTIONS / f"{name}.jsonl") for name in LEGACY_SETS]
    if Path(args.dev).is_file():
        sources.insert(0, ("dev", Path(args.dev)))
    BANK.mkdir(parents=True, exist_ok=True)
    for set_name, path in sources:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        converted, skipped = convert(set_name, rows, corpus_documents)
        target = BANK / f"legacy-{set_name.replace('_', '-')}.jsonl"
        target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in converted), encoding="utf-8")
        print(f"{target.name}: {len(converted)} of {len(rows)}")
        for line in skipped:
            print(f"  skipped {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
