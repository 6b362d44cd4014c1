"""The product's whole answer path, leave-one-document-out: the FAQ stage first, then the unit pipeline.

    python benchmarks/product_eval.py [--data DIR] [--sample-data DIR] [--bank DIR] [--faq-target 0.95 ...]
                                      [--log FILE]

What `learned.answer_from` does with a question, measured on questions of a document that neither stage was
trained on: the edition check, then the FAQ stage (knowledge/faq_match.py) over the FAQ entries of the
index (the sample FAQ's, in the one index of ../shared/corpus and sample_kb that `knowledge eval` is run on),
and when it does not answer, the unit ranker and gate (knowledge/learned.py).

For each document (the two sample_kb documents, one program, are one fold, as in knowledge_eval.py):
- the unit ranker and gate are trained on the other documents' questions (knowledge_eval.py's `train`, its
  features cached beside the index);
- the FAQ stage's scorer and gate are trained on faq_match_eval.py's pairs minus everything of that
  document: its questions (asked of the sample FAQ or of their document's passage entries), its passage
  entries, and, for the sample_kb fold, every pair with a sample FAQ entry (those entries are that
  document); its threshold is set for the target precision on out-of-fold scores of the training pairs
  alone (nested: a fold of those left out at a time), the sample FAQ entries' pairs when there are any,
  the passage entries' otherwise.
Per fold and pooled: accuracy (answered right / in scope), precision of confident answers, out-of-scope
declined, and which stage gave the answers and how many of them were right.

The retrieval and features of a question do not depend on its labels, so they are computed from the
questions alone (cached by the knowledge code that makes them) and the bank's current labels are applied
afterwards: a label review changes the figures without a new feature pass.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the machine is shared
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MADOGUCHI_KNOWLEDGE__PIPELINE", "learned")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faq_match_eval as faq_eval  # noqa: E402
import knowledge_eval as unit_eval  # noqa: E402

from bot.services import Services  # noqa: E402
from knowledge.faq_match import FAQ_MATCH_FEATURES, FaqModel, pair_features  # noqa: E402
from knowledge.model import CRITERIA, GATE_CRITERION, TARGET_PRECISION  # noqa: E402
from knowledge.retrieval import RetrievalOptions  # noqa: E402

ROOT = unit_eval.ROOT
#: The FAQ stage's out-of-fold precision targets measured (the shipped one is faq_match_eval.TARGET).
FAQ_TARGETS = (0.9, 0.95)


@dataclass
class Outcome:
    """One question on the product's path, out of fold."""

    id: str
    question: str
    document: str
    fold: str
    in_scope: bool
    declined: bool
    faq_confident: bool = False
    faq_right: bool = False
    faq_probability: float = 0.0
    faq_entry: str = ""
    unit_confident: bool = False
    unit_right: bool = False

    @property
    def stage(self) -> str:
        """Which stage answers: "faq", "unit", or "" (the unsure or outside reply)."""
        if self.declined:
            return ""
        return "faq" if self.faq_confident else "unit" if self.unit_confident else ""

    @property
    def right(self) -> bool:
        return self.in_scope and (self.faq_right if self.stage == "faq" else self.unit_right if self.stage else False)


def unit_records(data: Path, rows: list[dict]) -> tuple[Services, list[unit_eval.Record], list[unit_eval.Record]]:
    """knowledge_eval.py's records of the bank's questions (retrieval, answer units, features), labeled by
    the bank as it is now: asked of the whole index (what `knowledge eval` measures), and in their program's
    window (the gate learns from both, as the shipped one does: knowledge_eval.GATE_ON). The feature cache is
    keyed by the code that computes the features (knowledge_eval.code_version), so a change of retrieval or
    units is never read from a stale cache."""
    name = "product"
    bare = [{"id": r["id"], "question": r["question"], "document": r["document"]} for r in rows]
    services = unit_eval.open_index(data)
    records = unit_eval.extract(services, bare, RetrievalOptions(), data, name)
    windowed = unit_eval.extract(services, bare, RetrievalOptions(), data, f"{name}-window", window="program")
    # the rankers fitted on these features learn from the labels: they are kept per version of the labels
    labelled = hashlib.sha256(json.dumps([[r.get("in_scope", True), r.get("expect_any"), r.get("answer_span")]
                                          for r in rows], ensure_ascii=False).encode()).hexdigest()[:8]
    files = unit_eval._RANKER_FILES
    files[name] = files[name].with_name(f"{files[name].stem}-{labelled}.pkl")
    by_id = {str(r["id"]): r for r in rows}
    for record in (*records, *windowed):
        row = by_id[record.id]
        record.in_scope = bool(row.get("in_scope", True))
        record.correct, record.span = unit_eval.label_units(record.candidates, row)
    return services, records, windowed


def unit_outcomes(records: list[unit_eval.Record], windowed: list[unit_eval.Record], tag: str, target: float,
                  criterion: str, gate_on: str = unit_eval.GATE_ON) -> dict[str, tuple[bool, bool]]:
    """Each question's unit pipeline decision out of fold, asked of the whole index: (confident, right). The
    gate learns from the questions `gate_on` names (knowledge_eval.GATE_EXAMPLES), the test document's left out."""
    out: dict[str, tuple[bool, bool]] = {}
    for fold in sorted({r.fold for r in records}):
        training = [r for r in records if r.fold != fold]
        gate_sets = unit_eval.gate_sets_for(training, [r for r in windowed if r.fold != fold], gate_on)
        model = unit_eval.train(training, tag=tag, target=target, criterion=criterion, gate_sets=gate_sets)
        log: list[dict] = []
        unit_eval.test(model, [r for r in records if r.fold == fold], fold, log=log, general=True)
        for row in log:
            out[row["id"]] = (row["raw"] >= row["threshold"], bool(row["right"]))
    unit_eval.save_rankers()
    return out


def faq_training(pairs: list[faq_eval.Pairs], fold: str) -> list[faq_eval.Pairs]:
    """The FAQ stage's training pairs with nothing of the document (fold) held out."""
    kept = [p for p in pairs if unit_eval.fold_of(p.document) != fold]
    if fold == unit_eval.fold_of("expert-dispatch-faq.yaml"):  # its entries are the sample FAQ's
        kept = [p for p in kept if not p.sample]
    return kept


def faq_models(pairs: list[faq_eval.Pairs], folds: dict[str, int], targets: list[float]) -> list[FaqModel]:
    """The FAQ stage trained on `pairs`, its threshold set for each target on their own out-of-fold scores
    (as faq_match_eval.py --train sets the shipped one)."""
    model = faq_eval.fit(pairs, folds, None)
    scores = faq_eval.out_of_fold(pairs, folds)
    out = []
    reach = faq_eval.reaching(pairs)
    for target in targets:
        model.gate.calibrate(scores.raw[reach], scores.right[reach], target)
        out.append(dataclasses.replace(model, gate=dataclasses.replace(model.gate)))
    return out


def faq_test_rows(services: Services, records: list[unit_eval.Record],
                  rows: list[dict]) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Each question's pairs with the FAQ entries of the index it was asked of (the product's index): the
    entries' answers, the pair features and the labels (faq_match_eval's)."""
    index = services.knowledge.refresh(force=True)
    by_id = {str(r["id"]): r for r in rows}
    out = {}
    for record in records:
        row = by_id[record.id]
        retrieval = dataclasses.replace(record.retrieval, index=index)
        entries, x = pair_features(retrieval)
        answers = [e.answer for e in entries]
        y = faq_eval.labels(record.in_scope and record.document in faq_eval.SAME_PROGRAM,
                            list(row.get("expect_any") or []), answers)
        out[record.id] = (answers, x, y)
    return out


def outcomes(records: list[unit_eval.Record], units: dict[str, tuple[bool, bool]], pairs: list[faq_eval.Pairs],
             folds: dict[str, int], tests: dict, targets: list[float]) -> list[list[Outcome]]:
    """Each question's outcome on the product's path, out of fold, for each FAQ target."""
    out: list[list[Outcome]] = [[] for _ in targets]
    for fold in sorted({r.fold for r in records}):
        models = faq_models(faq_training(pairs, fold), folds, targets)
        for record in (r for r in records if r.fold == fold):
            for model, found in zip(models, out, strict=True):
                o = Outcome(record.id, record.question, record.document, fold, record.in_scope, record.declined)
                o.unit_confident, o.unit_right = units.get(record.id, (False, False))
                answers, x, y = tests[record.id]
                if len(answers):
                    best, gate_x = model.best(x)
                    o.faq_confident = bool(model.gate.confident(gate_x)[0])
                    o.faq_probability = float(model.gate.probability(gate_x)[0])
                    o.faq_right, o.faq_entry = bool(y[best]), answers[best][:60]
                found.append(o)
    return out


def line(name: str, found: list[Outcome]) -> str:
    answerable = [o for o in found if o.in_scope]
    outside = [o for o in found if not o.in_scope]
    given = [o for o in found if o.stage]
    right = sum(o.right for o in given)
    by_stage = {s: [o for o in given if o.stage == s] for s in ("faq", "unit")}
    stages = " | ".join(f"{len(v)} ({sum(o.right for o in v)} right)" for v in by_stage.values())
    precision = f"{right / len(given):.1%}" if given else "–"
    declined = f"{1 - sum(bool(o.stage) for o in outside) / len(outside):.1%}" if outside else "–"
    return (f"| {name} | {len(answerable)} + {len(outside)} | {right / max(1, len(answerable)):.1%} | "
            f"{precision} ({right} of {len(given)}) | {declined} | {stages} |")


def report(found: list[Outcome], target: float) -> None:
    print(f"\nthe product's path, leave-one-document-out, FAQ stage set for {target:.0%} out of fold:")
    print("| fold | questions (in + out) | accuracy | precision | out of scope declined | FAQ stage answers "
          "| unit pipeline answers |")
    print("|---|---|---|---|---|---|---|")
    folds = sorted({o.fold for o in found})
    for fold in folds:
        print(line(fold.removesuffix(".md"), [o for o in found if o.fold == fold]))
    print(line("**pooled**", found))
    precisions = [sum(o.right for o in g) / len(g) for f in folds if (g := [o for o in found if o.fold == f and o.stage])]
    accuracies = [sum(o.right for o in found if o.fold == f) / max(1, sum(o.in_scope for o in found if o.fold == f))
                  for f in folds]
    print(f"mean of folds: accuracy {np.mean(accuracies):.1%}, precision {np.mean(precisions):.1%} "
          f"(worst fold {min(precisions):.1%})")
    unit_alone = [dataclasses.replace(o, faq_confident=False) for o in found]
    print(line("unit pipeline alone, pooled", unit_alone))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--sample-data", type=Path, default=ROOT / "var" / "bench-sample")
    parser.add_argument("--bank", type=Path, default=unit_eval.BANK)
    parser.add_argument("--faq-target", type=float, nargs="*", default=list(FAQ_TARGETS))
    parser.add_argument("--unit-target", type=float, default=TARGET_PRECISION,
                        help="precision the unit gate is set for (as knowledge_eval.py lodo --target)")
    parser.add_argument("--unit-criterion", choices=CRITERIA, default=GATE_CRITERION)
    parser.add_argument("--gate-on", choices=unit_eval.GATE_EXAMPLES, default=unit_eval.GATE_ON,
                        help="the questions the unit gate learns from (as knowledge_eval.py lodo --gate-on)")
    parser.add_argument("--drop", nargs="*", default=[], choices=FAQ_MATCH_FEATURES,
                        help="FAQ stage features zeroed (ablation)")
    parser.add_argument("--log", type=Path, help="write each question's outcome (JSONL), at the last target")
    args = parser.parse_args(argv)
    rows = unit_eval.read_bank(args.bank)
    print(f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, {date.today()}; "
          f"bank: {len(rows)} questions")
    started = time.perf_counter()
    services, records, windowed = unit_records(args.data, rows)
    tag = next(iter(unit_eval._RANKER_FILES))
    print(f"unit features: {time.perf_counter() - started:.0f} s")
    units = unit_outcomes(records, windowed, tag, args.unit_target, args.unit_criterion, args.gate_on)
    print(f"unit pipeline out of fold (gate set for {args.unit_target:.0%}, {args.unit_criterion}, "
          f"learning from the {args.gate_on} questions): "
          f"{time.perf_counter() - started:.0f} s")
    pairs, folds = faq_eval.bank_pairs(rows, args.sample_data, args.data, drop=args.drop, corpus=services)
    tests = {k: (a, faq_eval.without(x, args.drop), y) for k, (a, x, y) in faq_test_rows(services, records, rows).items()}
    print(f"FAQ pairs: {time.perf_counter() - started:.0f} s")
    found: list[Outcome] = []
    for target, found in zip(args.faq_target, outcomes(records, units, pairs, folds, tests, args.faq_target),
                             strict=True):
        report(found, target)
    if args.log:
        args.log.write_text("".join(json.dumps({**dataclasses.asdict(o), "stage": o.stage, "right": o.right},
                                               ensure_ascii=False) + "\n" for o in found), encoding="utf-8")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main(sys.argv[1:])
