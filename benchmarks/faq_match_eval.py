"""Train and measure the FAQ question-matching gate (knowledge/faq_match.py), leaving whole entries out.

    python benchmarks/faq_match_eval.py [--sample-data DIR] [--with-corpus [--data DIR]] [--train] [--target 0.95]

Every bank question (benchmarks/questions/bank/) is asked of the index of sample_kb alone (the sample
chat's, and like a program's own index: its documents and FAQ; default var/bench-sample) and, with
`--with-corpus`, of ../shared/corpus with sample_kb too (DIR, default var/bench); each is ingested when
empty. Each FAQ entry of the index is a pair with the question, labeled 1 when the question
is in scope and the entry's answer states one of its `expect_any` (the evaluation contract's test), so
questions about the sample FAQ are its positives and every other question (other documents, near misses,
out of scope) gives negatives.

Folds leave whole entries out: the 10 sample entries fall into 5 folds of 2; a question belongs to the
fold of the entry that answers it (questions no entry answers are spread over the folds). For each fold
the gate is fitted on the other folds' questions paired with the other folds' entries only, and tested on
its own questions against every entry, as the next FAQ list's entries will be met: nobody trained on them.
The threshold of each fold is the one whose precision is at least --target on the other folds'
out-of-fold scores. `--train` fits the shipped gate on all pairs, calibrated on the pooled out-of-fold
scores, and writes knowledge/models/faq_match.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the machine is shared
os.environ.setdefault("MADOGUCHI_KNOWLEDGE__PIPELINE", "learned")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.services import Services  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.text import compact  # noqa: E402
from knowledge.evaluation import read_jsonl  # noqa: E402
from knowledge.faq_match import FAQ_MATCH_FEATURES, GATE_FEATURES, FaqModel, pair_features, save_model  # noqa: E402
from knowledge.ingest import ingest_paths  # noqa: E402
from knowledge.learned import edition_reply  # noqa: E402
from knowledge.model import TARGET_PRECISION, Gate, precision_threshold  # noqa: E402
from knowledge.service import knowledge_is_empty  # noqa: E402

BANK = ROOT / "benchmarks" / "questions" / "bank"
CORPUS = ROOT.parent / "shared" / "corpus"
#: The documents of the program the sample FAQ belongs to (its guide, and the dispatch spec the samples
#: are written from): a question about another program's call is never answered by the sample FAQ, even
#: when an entry happens to state its fact (「3回」「10:00」).
SAME_PROGRAM = {"expert-dispatch-faq.yaml", "expert-dispatch-guide.md", "sme-expert-dispatch-spec.md"}
FOLDS = 5


@dataclass
class Pairs:
    """One question asked of one index: its FAQ entries' features and which entries answer it."""

    id: str
    question: str
    document: str
    in_scope: bool
    index: str
    declined: bool  # by the edition check, which runs before the FAQ stage
    entries: list[str]  # the entries' questions
    answers: list[str]  # and their answers
    expect: list[str]  # the question's `expect_any`
    x: np.ndarray
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def answerable(self) -> bool:
        return bool(self.y.sum())


def open_index(data: Path, paths: list[Path]) -> Services:
    services = Services.create(Settings(data_dir=data))
    if knowledge_is_empty(services.db):
        ingest_paths(services, paths)
    return services


def extract(services: Services, rows: list[dict], name: str, data: Path) -> list[Pairs]:
    key = hashlib.sha256(json.dumps([rows, FAQ_MATCH_FEATURES], ensure_ascii=False).encode()).hexdigest()[:12]
    cache = data / f"faq-pairs-{key}.pkl"
    if cache.is_file():
        return relabeled([Pairs(**fields) for fields in pickle.loads(cache.read_bytes())])
    index = services.knowledge.refresh(force=True)
    out = []
    started = time.perf_counter()
    for number, row in enumerate(rows):
        retrieval = index.search(str(row["question"]))
        found, x = pair_features(retrieval)
        out.append(Pairs(str(row["id"]), str(row["question"]), str(row["document"]), bool(row.get("in_scope", True)),
                         name, edition_reply(retrieval) is not None, [f.question for f in found],
                         [f.answer for f in found], list(row.get("expect_any") or []), x))
        if number % 200 == 199:
            print(f"  {name}: {number + 1}/{len(rows)} questions, {time.perf_counter() - started:.0f} s", flush=True)
    cache.write_bytes(pickle.dumps([vars(p) for p in out]))  # plain dicts: readable whoever imports this
    return relabeled(out)


def relabeled(pairs: list[Pairs]) -> list[Pairs]:
    """Each pair is 1 when the question is in scope, about the sample FAQ's program (SAME_PROGRAM), and the
    entry's answer states one of its `expect_any` (the evaluation contract's test of an answer)."""
    for p in pairs:
        expect = [compact(e) for e in p.expect]
        asked = p.in_scope and p.document in SAME_PROGRAM
        p.y = np.array([asked and any(e and e in compact(a)[:300] for e in expect) for a in p.answers], dtype=float)
    return pairs


def usable(pairs: list[Pairs]) -> list[Pairs]:
    """The pairs whose labels can be trusted: a guide or spec question in scope that no entry's answer
    states by its `expect_any` is left out, since those strings were written for the other document's
    wording (「10時」 where the FAQ says 「10:00」), so a right FAQ answer would count as wrong."""
    return [p for p in pairs if len(p.entries) and not (p.in_scope and p.document in SAME_PROGRAM
                                                        and p.document != "expert-dispatch-faq.yaml"
                                                        and not p.answerable)]


def entry_folds(pairs: list[Pairs]) -> dict[str, int]:
    """Each entry's fold: the entries answering some bank question, in a fixed order, dealt round."""
    names = sorted({e for p in pairs for e, y in zip(p.entries, p.y, strict=True) if y})
    return {name: i % FOLDS for i, name in enumerate(names)}


def question_fold(p: Pairs, folds: dict[str, int]) -> int:
    answering = sorted(folds[e] for e, y in zip(p.entries, p.y, strict=True) if y and e in folds)
    if answering:
        return answering[0]
    return int(hashlib.sha256(p.id.encode()).hexdigest(), 16) % FOLDS


def training(pairs: list[Pairs], folds: dict[str, int], held: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per training question (not of fold `held`), the rows and labels of its pairs with the training
    entries (not of fold `held`)."""
    out = []
    for p in pairs:
        if held is not None and question_fold(p, folds) == held:
            continue
        keep = np.array([held is None or folds.get(e, -1) != held for e in p.entries])
        if keep.any():
            out.append((p.x[keep], p.y[keep]))
    return out


def fit(pairs: list[Pairs], folds: dict[str, int], held: int | None) -> FaqModel:
    """The scorer on every pair of the training questions and entries, then the gate on each training
    question's best entry."""
    questions = training(pairs, folds, held)
    scorer = Gate.fit(np.vstack([x for x, _ in questions]), np.concatenate([y for _, y in questions]),
                      FAQ_MATCH_FEATURES)
    model = FaqModel(scorer, Gate.fit(np.zeros((2, len(GATE_FEATURES))), np.array([0.0, 1.0]), GATE_FEATURES))
    rows, right = [], []
    for x, y in questions:
        best, gate_x = model.best(x)
        rows.append(gate_x)
        right.append(y[best])
    model.gate = Gate.fit(np.vstack(rows), np.array(right), GATE_FEATURES)
    return model


def best_of(model: FaqModel, p: Pairs) -> tuple[float, bool]:
    """The gate's raw score of the question's best entry, and whether that entry answers it."""
    best, gate_x = model.best(p.x)
    return float(model.gate.raw(gate_x)[0]), bool(p.y[best])


@dataclass
class Scores:
    raw: np.ndarray
    right: np.ndarray
    fold: np.ndarray


def out_of_fold(pairs: list[Pairs], folds: dict[str, int]) -> Scores:
    raw, right, fold = np.zeros(len(pairs)), np.zeros(len(pairs)), np.zeros(len(pairs), dtype=int)
    for k in range(FOLDS):
        model = fit(pairs, folds, k)
        for i, p in enumerate(pairs):
            if question_fold(p, folds) == k:
                raw[i], right[i] = best_of(model, p)
                fold[i] = k
    return Scores(raw, right, fold)


def report(pairs: list[Pairs], scores: Scores, target: float) -> dict[str, dict[str, float]]:
    """Per fold, with the threshold set on the other folds' out-of-fold scores: answered right, precision,
    declined (questions no entry answers). Also per group of questions, pooled."""
    answered = np.zeros(len(pairs), dtype=bool)
    for k in range(FOLDS):
        others = scores.fold != k
        threshold = precision_threshold(scores.raw[others], scores.right[others], target)
        mine = scores.fold == k
        answered[mine] = scores.raw[mine] >= threshold
    answered &= np.array([not p.declined for p in pairs])
    answerable = np.array([p.answerable for p in pairs])
    out: dict[str, dict[str, float]] = {}

    def line(name: str, mask: np.ndarray) -> None:
        given = answered & mask
        out[name] = {
            "questions": int(mask.sum()), "answerable": int((mask & answerable).sum()),
            "accuracy": float((given & (scores.right > 0)).sum() / max(1, (mask & answerable).sum())),
            "answers": int(given.sum()),
            "precision": float(scores.right[given].mean()) if given.any() else float("nan"),
            "declined": float(1 - answered[mask & ~answerable].mean()) if (mask & ~answerable).any() else float("nan"),
        }

    for k in range(FOLDS):
        line(f"fold {k + 1}", scores.fold == k)
    names = [("index: corpus + sample_kb", lambda p: p.index == "corpus"),
             ("index: sample_kb alone", lambda p: p.index == "sample"),
             ("sample FAQ questions (bank)", lambda p: p.document == "expert-dispatch-faq.yaml"),
             ("guide and dispatch-spec questions", lambda p: p.document in SAME_PROGRAM
              and p.document != "expert-dispatch-faq.yaml"),
             ("other programs' questions", lambda p: p.document not in SAME_PROGRAM)]
    for name, test in names:
        line(name, np.array([test(p) for p in pairs]))
    line("all", np.ones(len(pairs), dtype=bool))
    return out


def print_report(out: dict[str, dict[str, float]]) -> None:
    print(f"| {'questions':<32} | asked | answerable | answered right | answers | precision | no entry: declined |")
    print("|---|---|---|---|---|---|---|")
    for name, r in out.items():
        if not r["questions"]:
            continue
        print(f"| {name:<32} | {r['questions']} | {r['answerable']} | {100 * r['accuracy']:.1f}% | {r['answers']} | "
              f"{100 * r['precision']:.1f}% | {100 * r['declined']:.1f}% |")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--sample-data", type=Path, default=ROOT / "var" / "bench-sample")
    parser.add_argument("--bank", type=Path, default=BANK)
    parser.add_argument("--target", type=float, default=TARGET_PRECISION)
    parser.add_argument("--with-corpus", action="store_true", help="also ask the corpus + sample_kb index")
    parser.add_argument("--train", action="store_true", help="write knowledge/models/faq_match.json")
    args = parser.parse_args(argv)
    rows = [r for path in sorted(args.bank.glob("*.jsonl")) for r in read_jsonl(path)]
    started = time.perf_counter()
    pairs = extract(open_index(args.sample_data, [ROOT / "sample_kb"]), rows, "sample", args.sample_data)
    if args.with_corpus:
        pairs += extract(open_index(args.data, [CORPUS, ROOT / "sample_kb"]), rows, "corpus", args.data)
    pairs = usable(pairs)
    folds = entry_folds(pairs)
    print(f"{len(rows)} bank questions, {len(pairs)} with trusted labels, {len(folds)} entries answering some, features "
          f"{time.perf_counter() - started:.0f} s; {platform.machine()}, {os.cpu_count()} cores, {date.today()}")
    scores = out_of_fold(pairs, folds)
    print(f"\nleaving whole entries out (5 folds of 2 entries), threshold for {args.target:.0%} on the other folds:")
    print_report(report(pairs, scores, args.target))
    if args.train:
        model = fit(pairs, folds, None)
        model.gate.calibrate(scores.raw, scores.right, args.target)
        model.trained_on = f"{len(rows)} bank questions x {len({p.index for p in pairs})} indexes, {date.today()}"
        save_model(model)
        print(f"\nwrote knowledge/models/faq_match.json (threshold {model.gate.threshold:.4f})")


if __name__ == "__main__":
    main(sys.argv[1:])
