"""Measure madoguchi's answers: leave-one-document-out over the labeled bank, ablations, retraining.

    python benchmarks/knowledge_eval.py lodo [--data DIR] [--ablation] [--train] [--bank DIR]
                                             [--ranker ensemble|lambdarank|linear|fixed] [--pipeline classic]
    python benchmarks/knowledge_eval.py heldout [--data DIR]     (once, with the final pipeline)
    python benchmarks/knowledge_eval.py legacy CORPUS_DIR QUESTIONS.jsonl [QUESTIONS.jsonl ...]   (older sets;
                                                                     `legacy` may be left out)
    python benchmarks/knowledge_eval.py [COMMAND] --help

`lodo` ingests ../shared/corpus and sample_kb into DIR (default var/bench; brought up to date incrementally),
computes each bank question's answering features once (retrieval, answer units, unit features; cached
in DIR/features-*.pkl, and the rankers fitted on them in DIR/rankers-*.pkl), then for each document
trains the ranker and the gate on the other documents' questions and tests on that document's. It
prints per fold and the mean: accuracy, precision of confident answers, out-of-scope declined, and recall
of the gold span in the top-3 units.
The two sample_kb documents (a guide and its FAQ, one program) are one fold.
The classic answerer's answer to every question is computed too (the baseline; no feature of the learned
pipeline): `--pipeline classic` prints its figures per document, and for the new and the 275 legacy
questions apart (the baseline). `--ablation` adds the table of stages removed or swapped; `--train`
retrains the shipped model (knowledge/models/answer_model.json and ranker.lgb.txt) on the whole bank.
`heldout` answers a held-out set (default benchmarks/questions/heldout13/, written blind and kept unopened until it
is measured: a set is measured once, then it joins the bank) with the shipped model and the classic answerer. The
set waiting is sealed in benchmarks/questions/sealed/heldout13.tar.gz (a git branch alone did not survive a
machine reset: set 8's first version was lost so); `tar -xzf` it into benchmarks/questions/ to measure it.
The held-out sets measured so far joined the bank (bank/heldout1-*.jsonl ... bank/heldout12-*.jsonl).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the machine is shared: one core for the fits is plenty
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib
import inspect
import json
import pickle
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.services import Services  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.text import compact  # noqa: E402
from knowledge.replies import asks_another_edition  # noqa: E402
from knowledge.answering import answer_from as classic_answer_from  # noqa: E402
from knowledge.evaluation import answer_file, read_jsonl, score  # noqa: E402
from knowledge.features import (  # noqa: E402
    GATE_FEATURES, UNIT_FEATURES, Candidate, candidates, gate_features)
from knowledge.ingest import ingest_paths  # noqa: E402
from knowledge.model import (  # noqa: E402
    CRITERIA, GATE_CRITERION, LINEAR_SHARE, TARGET_PRECISION, AnswerModel, EnsembleRanker, Gate, LambdaRanker,
    Ranker, precision_threshold)
from knowledge.retrieval import HybridIndex, Retrieval, RetrievalOptions  # noqa: E402
from knowledge.service import SourceFilter  # noqa: E402
from knowledge.units import unbulleted  # noqa: E402

BANK = ROOT / "benchmarks" / "questions" / "bank"
CORPUS = ROOT.parent / "shared" / "corpus"
SAMPLE_DOCUMENTS = {"expert-dispatch-faq.yaml", "expert-dispatch-guide.md"}
#: The classic answerer's threshold for the baseline (its shipped default, not an operator's setting).
CLASSIC_THRESHOLD = 0.5
#: The precisions the gate is set for in the sweep (the precision/accuracy trade-off, out of fold).
SWEEP_TARGETS = (0.98, 0.95, 0.925, 0.9, 0.875, 0.85, 0.8)
#: The names of the two windows' figures: the whole index is what a general entry point of an installation with
#: several programs searches, so its answers are gated by the general threshold (knowledge/model.py Gate).
WHOLE_INDEX, PROGRAM_WINDOW = "whole index", "program window"
#: Where a question is asked: "index", the whole index (every document; the strict headline: the bot at a
#: general entry point), or "program", its own program's window (what a conversation at /p/<program>/ gets).
WINDOWS = ("index", "program")
#: The questions whose out-of-fold best units the gate is trained on: asked of the whole index, in their
#: program's window, or both (`lodo --gate-on`; the ranker is trained on the whole index's in every case).
GATE_EXAMPLES = ("index", "program", "both")
#: The gate's training examples by default and for the shipped model (chosen by LODO, docs/BENCHMARKS.md).
GATE_ON = "both"
#: Units whose span recall is measured: the units shown (one answer, or up to two excerpts) and one more.
SPAN_TOP = 3


@dataclass
class Record:
    id: str
    question: str
    document: str
    fold: str
    in_scope: bool
    style: str
    declined: bool  # by the edition check, before any model
    retrieval: Retrieval
    candidates: list[Candidate]
    x: np.ndarray
    correct: np.ndarray
    span: np.ndarray
    #: the classic answerer (KNOWLEDGE_PIPELINE=classic) on the same question: confident, and right
    classic_confident: bool = False
    classic_right: bool = False
    classic_confidence: float = 0.0

    @property
    def legacy(self) -> bool:
        """One of the 275 older questions the classic answerer was tuned on (converted into the bank)."""
        return self.id.startswith("legacy-")


def fold_of(document: str) -> str:
    return "sample_kb" if document in SAMPLE_DOCUMENTS else document


def read_bank(bank: Path) -> list[dict]:
    rows = []
    for path in sorted(bank.glob("*.jsonl")):
        rows += read_jsonl(path)
    return rows


def open_index(data: Path) -> Services:
    """The index of ../shared/corpus and sample_kb in `data`, brought up to date first: the ingest is incremental
    and knows its recipe (knowledge/ingest.py INDEX_RECIPE), so an index cut or embedded by older code is cut
    and embedded again, and an up-to-date one costs a second (reusing any index as it stood once fed the
    features passage vectors the shipped code no longer computes)."""
    services = Services.create(Settings(data_dir=data))
    started = time.perf_counter()
    report = ingest_paths(services, [CORPUS, ROOT / "sample_kb"])
    print(f"ingest: {len(report.results)} files ({report.count('unchanged')} unchanged), {report.chunks} chunks "
          f"stored, {time.perf_counter() - started:.1f} s")
    return services


class CachedQueries(Embeddings):
    """The embedder's query vectors, kept on disk: every ablation asks the same questions again.
    Documents are embedded by the wrapped embedder, uncached."""

    def __init__(self, inner: Embeddings, path: Path) -> None:
        self.inner, self.path = inner, path
        self.vectors: dict[str, list[float]] = pickle.loads(path.read_bytes()) if path.is_file() else {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        if text not in self.vectors:
            self.vectors[text] = self.inner.embed_query(text)
        return self.vectors[text]

    def save(self) -> None:
        self.path.write_bytes(pickle.dumps(self.vectors))


#: The shortest sentence of a unit that counts as a part of a longer span: shorter ones (「2式」) stand
#: in many places.
SPAN_PART_MIN_CHARS = 6


class _Unpickler(pickle.Unpickler):
    """Reads the caches this script wrote whichever script runs: run as a script, its records were pickled as
    `__main__.Record`, which another benchmark importing it (excerpt_eval.py) cannot find."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__" and name in globals():
            return globals()[name]
        return super().find_class(module, name)


def load_cache(path: Path) -> Any:
    with path.open("rb") as handle:
        return _Unpickler(handle).load()


def holds_span(span: str, unit_text: str) -> bool:
    """Whether a unit holds a question's gold span (`span` already compacted): inside the unit's compacted text,
    the list mark a writer copied with it aside (units show an item without its mark)."""
    bare = unbulleted(span)
    return bool(bare) and bare in compact(unit_text)


def holds_answer(span: str, expect: list[str], unit_text: str, unit_core: str) -> bool:
    """Whether a unit holds a question's gold answer (`span` and `expect` compacted): it holds the span, or the
    span runs over two sentences (「…メールでお願いします。電話での…受付できません。」) and the unit's own sentence is
    the part of it that states one of `expect`."""
    if holds_span(span, unit_text):
        return True
    core = unbulleted(compact(unit_core))
    text = compact(unit_text)
    return (bool(span) and len(core) >= SPAN_PART_MIN_CHARS and core in unbulleted(span)
            and any(e and e in text for e in expect))


def label_units(found: list[Candidate], row: dict) -> tuple[np.ndarray, np.ndarray]:
    expect = [compact(e) for e in row.get("expect_any") or []]
    span = compact(row.get("answer_span") or "")
    correct = np.array([any(e and e in compact(c.unit.text)[:300] for e in expect) for c in found], dtype=float)
    spans = np.array([c.hit.source.name == row["document"] and holds_answer(span, expect, c.unit.text, c.unit.core)
                      for c in found], dtype=float)
    return correct, spans


def labelling_version() -> str:
    """The labelling code a record was judged by (label_units, the span rules and their constant): the records
    keep each unit's labels, so a change to how a unit is judged right computes them again."""
    return "".join(inspect.getsource(f) for f in (label_units, holds_span, holds_answer)) + str(SPAN_PART_MIN_CHARS)


#: The fields of a bank question that its record depends on (the cache key): a change of another (a fact's
#: name, the answer kind a writer noted) computes nothing again.
KEYED_FIELDS = ("id", "question", "document", "in_scope", "style", "answer_span", "expect_any")


def code_version() -> str:
    """A digest of the code a feature pass runs (retrieval, units, kinds, the unit features, ...): cached
    features are computed again when it changes. The gate's features and the models are left out (a gate
    change refits no ranker: they are computed from the cached records at training time)."""
    from knowledge import features

    digest = hashlib.sha256()
    for path in sorted((ROOT / "knowledge").glob("*.py")):
        if path.name not in ("features.py", "model.py", "learned.py", "faq_match.py"):
            digest.update(path.read_bytes())
    for function in (features.candidates, features._context, features.pool, features.question_words):
        digest.update(inspect.getsource(function).encode())
    return digest.hexdigest()[:12]


def index_state(services: Services) -> str:
    """A digest of what the index holds (each source's path and content hash, which covers the ingest's
    recipe): features computed from another state of the index are computed again."""
    from sqlalchemy import select

    from bot.storage.models import KnowledgeSource

    with services.db.session() as session:
        rows = sorted(session.execute(select(KnowledgeSource.path, KnowledgeSource.content_hash)).all())
    return hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()[:12]


def window_of(fold: str) -> SourceFilter:
    """The sources a conversation in the window of `fold`'s program answers from (knowledge/service.py
    SourceFilter, as bot/programs.py builds it): each corpus document is one program, the two sample_kb
    documents are one (the expert-dispatch sample program)."""
    documents = SAMPLE_DOCUMENTS if fold == "sample_kb" else {fold}
    return SourceFilter(f"bench-window-{fold}", lambda path: Path(path).name in documents)


def extract(services: Services, rows: list[dict], options: RetrievalOptions, data: Path, name: str,
            plain_units: bool = False, window: str = "index") -> list[Record]:
    """Each question's retrieval, answer units and unit features (cached). `window`: "index" asks every
    question of the whole index (every document at once), "program" asks each in its own program's window
    (`window_of` its document's fold: what a conversation at /p/<program>/ answers from)."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}")
    asked = [{k: row.get(k) for k in KEYED_FIELDS} for row in rows]
    key = hashlib.sha256(json.dumps([asked, repr(options), plain_units, UNIT_FEATURES, code_version(),
                                     index_state(services), labelling_version()]
                                    + ([window] if window != "index" else []), ensure_ascii=False,
                                    default=str).encode()).hexdigest()[:12]
    cache = data / f"features-{name}-{key}.pkl"
    _RANKER_FILES[name] = data / f"rankers-{name}-{key}.pkl"
    if cache.is_file():
        return load_cache(cache)
    kb = services.knowledge
    whole = kb.refresh(force=True)
    queries = CachedQueries(whole.embeddings, data / "query-vectors.pkl")
    indexes: dict[str, HybridIndex] = {}

    def index_for(fold: str) -> HybridIndex:
        if fold not in indexes:
            index = whole if window == "index" else kb.scoped(window_of(fold))
            index.options = options
            index.embeddings = queries
            index._with = {}
            indexes[fold] = index
        return indexes[fold]

    records = []
    started = time.perf_counter()
    for number, row in enumerate(rows):
        index = index_for(fold_of(row["document"]))
        classic_index = index.with_options(RetrievalOptions.for_pipeline("classic"))
        retrieval = index.search(str(row["question"]))
        declined = asks_another_edition(retrieval)
        classic = classic_answer_from(classic_index.search(str(row["question"])), CLASSIC_THRESHOLD)
        expect = [compact(e) for e in row.get("expect_any") or []]
        classic_right = bool(row.get("in_scope", True)) and any(e and e in compact(classic.body)[:300] for e in expect)
        found = candidates(retrieval, index.headers, index.positions, retrieval.faq, index.title_keys,
                           index.title_tokens, kb.unit_vectors)
        if plain_units:  # ablation: bare sentences, no list lead-in, no whole lists, no header on rows
            found = [replace(c, unit=replace(c.unit, text=c.unit.core)) for c in found if c.unit.kind != "list"]
        correct, span = label_units(found, row)
        retrieval.index = None  # not pickled: the records keep what the models need
        x = np.vstack([c.features for c in found]) if found else np.zeros((0, len(UNIT_FEATURES)))
        records.append(Record(str(row["id"]), str(row["question"]), row["document"], fold_of(row["document"]),
                              bool(row.get("in_scope", True)), row.get("style", ""), declined, retrieval,
                              found, x, correct, span, classic.confident, classic_right,
                              classic.confidence))
        if number % 100 == 99:
            print(f"  {name}: {number + 1}/{len(rows)} questions, {time.perf_counter() - started:.0f} s "
                  f"({kb.unit_vectors.embedded} units embedded)", flush=True)
    for index in indexes.values():
        index.embeddings = queries.inner
        index.options = RetrievalOptions()
    queries.save()
    cache.write_bytes(pickle.dumps(records))
    return records


# --------------------------------------------------------------------------------------------- training
#: The rankers compared: lambdarank trees plus the linear pairwise ranker (shipped), each alone, and a fixed sum.
RANKERS = ("ensemble", "lambdarank", "linear", "fixed")
#: Rankers fitted so far, by (features, training documents, ranker, feature mask): the leave-one-document-out
#: folds and their inner folds fit the same document sets again and again.
_FITTED: dict[tuple, object] = {}
#: Where the rankers fitted on each feature pass (by its tag) are kept between runs: beside that pass's cached
#: features, named by the same key, so a run that changes only the gate fits no ranker again.
_RANKER_FILES: dict[str, Path] = {}
_LOADED: set[str] = set()


def _load_rankers(tag: str) -> None:
    path = _RANKER_FILES.get(tag)
    if tag in _LOADED or path is None:
        return
    _LOADED.add(tag)
    if path.is_file():
        _FITTED.update(load_cache(path))


def save_rankers() -> None:
    for tag, path in _RANKER_FILES.items():
        fitted = {k: v for k, v in _FITTED.items() if k[0] == tag}
        if fitted:
            path.write_bytes(pickle.dumps(fitted))


def fit_ranker(records: list[Record], kind: str, tag: str = "", mask: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    if kind == "fixed":
        return None
    if kind == "ensemble":  # its two halves are fitted (and kept) as the rankers alone are
        return EnsembleRanker(fit_ranker(records, "lambdarank", tag, mask), fit_ranker(records, "linear", tag, mask),
                              LINEAR_SHARE, UNIT_FEATURES)
    key = (tag, frozenset(r.fold for r in records), kind, None if mask is None else mask.tobytes())
    _load_rankers(tag)
    if tag and key in _FITTED:
        return _FITTED[key]
    ranker = (LambdaRanker if kind == "lambdarank" else Ranker).fit(_groups(records), UNIT_FEATURES)
    if tag:
        _FITTED[key] = ranker
    return ranker


#: Each ranker's scores of each question's units, by (ranker, features): every gate fit, sweep row and test
#: ranks the same questions with the same few rankers again (the rankers are kept alive here, so their ids
#: stay theirs).
_SCORES: dict[tuple, np.ndarray] = {}
_KEPT: dict[int, object] = {}


def _ranker_key(ranker) -> tuple:  # type: ignore[no-untyped-def]
    parts = (ranker.trees, ranker.linear) if isinstance(ranker, EnsembleRanker) else (ranker,)
    for part in parts:
        _KEPT[id(part)] = part
    return (*(id(part) for part in parts), getattr(ranker, "share", None))


def _ranked(record: Record, ranker) -> list[int]:  # type: ignore[no-untyped-def]
    if not len(record.x):
        return []
    key = (_ranker_key(ranker), hash(record.x.tobytes()), record.x.shape)
    scores = _SCORES.get(key)
    if scores is None:
        scores = _SCORES[key] = ranker.score(record.x) if ranker is not None else fixed_scores(record.x)
    for candidate, value in zip(record.candidates, scores, strict=True):
        candidate.score = float(value)
    return list(np.argsort(-scores, kind="stable"))


def fixed_scores(x: np.ndarray) -> np.ndarray:
    """The ranker swapped for a fixed sum (ablation): coverage with the path, kind match, retrieval prior."""
    column = {n: i for i, n in enumerate(UNIT_FEATURES)}
    return x[:, column["cov_path"]] + x[:, column["kind_match"]] + x[:, column["prior"]]


def _gate_row(record: Record, ranker) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    order = _ranked(record, ranker)
    ranked = [record.candidates[i] for i in order]
    x = gate_features(record.retrieval, ranked)  # type: ignore[arg-type]
    y = float(record.in_scope and bool(order) and record.correct[order[0]] > 0)
    return x, y


def _groups(records: list[Record]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(r.x, r.correct) for r in records if r.in_scope and len(r.x) and not r.declined]


def train(records: list[Record], ranker: str = "ensemble", calibrate: bool = True,
          mask: np.ndarray | None = None, gate_mask: np.ndarray | None = None,
          target: float = TARGET_PRECISION, tag: str = "", criterion: str = GATE_CRITERION,
          gate_sets: tuple[list[Record], ...] | None = None, window_threshold_on: str = "both") -> AnswerModel:
    """The ranker on every question; the gate on the questions' out-of-fold best units, its calibration and
    threshold on out-of-fold gate scores (folds: the training questions' documents; `criterion`: how the
    threshold reads them, knowledge/model.py CRITERIA). `gate_sets`: the records the gate learns from
    (default the ranker's own; the same questions asked in their program's window, or both: each is ranked
    by the ranker trained without its document, as the ranker's own are). `window_threshold_on`: the
    questions a program window's threshold is read on when the gate learns from both ("both", or "window":
    the window's questions alone, as the general threshold is read on the whole index's alone)."""
    records = [r for r in records if not r.declined]
    records = [_masked(r, mask) for r in records] if mask is not None else records
    folds = sorted({r.fold for r in records})
    sets = [[r for r in chosen if not r.declined and r.fold in folds] for chosen in gate_sets or (records,)]
    if mask is not None and gate_sets is not None:
        sets = [[_masked(r, mask) for r in chosen] for chosen in sets]
    # The whole index's questions are the first set (gate_sets_for: the ranker's own, or (index, window)).
    index_set = 0 if gate_sets is None or len(gate_sets) == 2 else None
    gx, gy, gf, groups, general = [], [], [], [], []
    for fold in folds:
        inner = fit_ranker([r for r in records if r.fold != fold], ranker, tag, mask)
        for number, chosen in enumerate(sets):
            for record in (r for r in chosen if r.fold == fold):
                x, y = _gate_row(record, inner)
                gx.append(x if gate_mask is None else x * gate_mask)
                gy.append(y)
                gf.append(fold)
                general.append(number == index_set)
                # fold-min reads each document in each window apart: the target holds for both
                groups.append(fold if len(sets) == 1 else f"{fold}#{number}")
    gx_arr, gy_arr, gf_arr = np.array(gx), np.array(gy), np.array(gf)
    gate = Gate.fit(gx_arr, gy_arr, GATE_FEATURES)
    raw = np.zeros(len(gy_arr))
    for fold in folds:
        held = gf_arr == fold
        raw[held] = Gate.fit(gx_arr[~held], gy_arr[~held]).raw(gx_arr[held])
    if calibrate:
        gate.calibrate(raw, gy_arr, target, np.array(groups), criterion)
        if window_threshold_on == "window" and len(sets) == 2:
            own = ~np.array(general)
            gate.threshold = precision_threshold(raw[own], gy_arr[own], target, gf_arr[own], criterion)
        if index_set is not None:
            # A general entry point's threshold: the same target read on the whole index's questions alone.
            asked = np.array(general)
            gate.general_threshold = max(gate.threshold, precision_threshold(
                raw[asked], gy_arr[asked], target, gf_arr[asked], criterion))
    else:
        gate.knots_x, gate.knots_y = np.array([0.0, 1.0]), np.array([0.0, 1.0])
        gate.threshold = 0.5
    fitted = fit_ranker(records, ranker, tag, mask)
    model = AnswerModel(fitted if fitted is not None else Ranker(
        np.zeros(len(UNIT_FEATURES)), np.zeros(len(UNIT_FEATURES)), np.ones(len(UNIT_FEATURES)), UNIT_FEATURES),
        gate, trained_on=f"{len(records)} bank questions, {date.today()}")
    model.ranker_kind = ranker  # type: ignore[attr-defined]
    return model


def _masked(record: Record, mask: np.ndarray) -> Record:
    return replace(record, x=record.x * mask if len(record.x) else record.x)


@dataclass
class FoldResult:
    fold: str
    answerable: int
    out_of_scope: int
    right: int
    confident: int
    confident_right: int
    declined_out: int
    span_found: int

    @property
    def accuracy(self) -> float:
        return self.right / self.answerable if self.answerable else 0.0

    @property
    def precision(self) -> float:
        return self.confident_right / self.confident if self.confident else 1.0

    @property
    def declined(self) -> float:
        return self.declined_out / self.out_of_scope if self.out_of_scope else 1.0

    @property
    def span_recall(self) -> float:
        return self.span_found / self.answerable if self.answerable else 0.0


def test(model: AnswerModel, records: list[Record], fold: str, mask: np.ndarray | None = None,
         gate_mask: np.ndarray | None = None, log: list[dict] | None = None, general: bool = False) -> FoldResult:
    """One fold's figures; `log` gets one row per question (its gate score and outcome: the curve).
    `general`: the questions were asked of the whole index (a general entry point: the general threshold)."""
    fixed = getattr(model, "ranker_kind", "") == "fixed"
    threshold = model.gate.threshold_for(general)
    result = FoldResult(fold, 0, 0, 0, 0, 0, 0, 0)
    for record in records:
        if mask is not None:
            record = _masked(record, mask)
        confident, right, span = False, False, False
        if not record.declined and len(record.x):
            x, y = _gate_row(record, None if fixed else model.ranker)
            if gate_mask is not None:
                x = x * gate_mask
            confident = bool(model.gate.confident(x, general)[0])
            right = bool(y)
            if log is not None:
                best = record.candidates[_ranked(record, None if fixed else model.ranker)[0]]
                log.append({"fold": fold, "id": record.id, "document": record.document, "question": record.question,
                            "in_scope": record.in_scope,
                            "raw": round(float(model.gate.raw(x)[0]), 6), "threshold": threshold,
                            "window_threshold": model.gate.threshold,
                            "confident": confident, "right": right, "unit": best.unit.text[:120],
                            "source": best.hit.source.name})
            order = _ranked(record, None if fixed else model.ranker)
            shown: list[int] = []
            for i in order:  # distinct units, as shown
                if all(record.candidates[i].unit.text != record.candidates[j].unit.text for j in shown):
                    shown.append(i)
                if len(shown) == SPAN_TOP:
                    break
            span = any(record.span[i] > 0 for i in shown)
        elif log is not None:  # declined by the edition check, or nothing retrieved: never answered
            log.append({"fold": fold, "id": record.id, "document": record.document, "question": record.question,
                        "in_scope": record.in_scope, "raw": -1.0, "threshold": threshold,
                        "confident": False, "right": False, "unit": "", "source": ""})
        if record.in_scope:
            result.answerable += 1
            result.right += confident and right
            result.span_found += span
        else:
            result.out_of_scope += 1
            result.declined_out += not confident
        result.confident += confident
        result.confident_right += confident and right and record.in_scope
    return result


def lodo(records: list[Record], only=None, tested: list[Record] | None = None,  # type: ignore[no-untyped-def]
         gate_sets: tuple[list[Record], ...] | None = None, **options) -> list[FoldResult]:
    """Train on the other documents' questions, test on each document's (those `only` keeps, if given).
    `tested`: the questions tested, when not `records` (the same questions asked in their program's
    window); `gate_sets`: the records the gate learns from (`train`)."""
    name = WHOLE_INDEX if tested is None else PROGRAM_WINDOW
    return lodo_windows(records, {name: records if tested is None else tested}, only, gate_sets, **options)[name]


def lodo_windows(records: list[Record], tested: dict[str, list[Record]], only=None,  # type: ignore[no-untyped-def]
                 gate_sets: tuple[list[Record], ...] | None = None, **options) -> dict[str, list[FoldResult]]:
    """`lodo` testing each fold's model on several sets of the same questions at once (by window: the whole
    index, the program's window); one training per fold. `log` (a list) gets every set's rows, each with
    its set's name as "window"."""
    results: dict[str, list[FoldResult]] = {name: [] for name in tested}
    log = options.get("log")
    test_options = {k: v for k, v in options.items() if k in ("mask", "gate_mask")}
    options = {k: v for k, v in options.items() if k != "log"}
    for fold in sorted({r.fold for r in records}):
        sets = None if gate_sets is None else tuple([r for r in chosen if r.fold != fold] for chosen in gate_sets)
        model = train([r for r in records if r.fold != fold], gate_sets=sets, **options)
        for name, questions in tested.items():
            rows: list[dict] | None = None if log is None else []
            results[name].append(test(model, [r for r in questions if r.fold == fold and (only is None or only(r))],
                                      fold, log=rows, general=name == WHOLE_INDEX, **test_options))
            if log is not None and rows is not None:
                log.extend({**row, "window": name} for row in rows)
    return results


def gate_sets_for(records: list[Record], windowed: list[Record] | None, examples: str) -> tuple[list[Record], ...] | None:
    """The gate's training records for `--gate-on` (GATE_EXAMPLES); None: the ranker's own (the whole index)."""
    if examples == "index" or windowed is None:
        if examples != "index":
            raise ValueError(f"--gate-on {examples} needs the program-window records")
        return None
    return (windowed,) if examples == "program" else (records, windowed)


def classic_results(records: list[Record], only=None) -> list[FoldResult]:  # type: ignore[no-untyped-def]
    """The classic answerer (no training: its rules and weights are fixed) on each document's questions."""
    results = []
    for fold in sorted({r.fold for r in records}):
        result = FoldResult(fold, 0, 0, 0, 0, 0, 0, 0)
        for record in (r for r in records if r.fold == fold and (only is None or only(r))):
            if record.in_scope:
                result.answerable += 1
                result.right += record.classic_confident and record.classic_right
            else:
                result.out_of_scope += 1
                result.declined_out += not record.classic_confident
            result.confident += record.classic_confident
            result.confident_right += record.classic_confident and record.classic_right
        results.append(result)
    return results


SUBSETS = (("the new questions", lambda r: not r.legacy), ("the 275 legacy questions", lambda r: r.legacy))


def mean(results: list[FoldResult]) -> FoldResult:
    total = FoldResult("all (pooled)", *(sum(getattr(r, f) for r in results) for f in
                                        ("answerable", "out_of_scope", "right", "confident", "confident_right",
                                         "declined_out", "span_found")))
    return total


def print_table(results: list[FoldResult], span: bool = True) -> None:
    tail = " span in top 3 |" if span else ""
    print(f"| fold (test document) | questions (in + out) | accuracy | precision | out of scope declined |{tail}")
    print("|---|---|---|---|---|" + ("---|" if span else ""))
    for r in results:
        print(f"| {r.fold} | {r.answerable} + {r.out_of_scope} | {r.accuracy:.1%} | {r.precision:.1%} "
              f"| {r.declined:.1%} |" + (f" {r.span_recall:.1%} |" if span else ""))
    acc = np.mean([r.accuracy for r in results])
    prec = np.mean([r.precision for r in results])
    dec = np.mean([r.declined for r in results])
    spans = np.mean([r.span_recall for r in results])
    print(f"| **mean of folds** | | **{acc:.1%}** | **{prec:.1%}** | **{dec:.1%}** |"
          + (f" **{spans:.1%}** |" if span else ""))
    pooled = mean(results)
    print(f"| all questions pooled | {pooled.answerable} + {pooled.out_of_scope} | {pooled.accuracy:.1%} "
          f"| {pooled.precision:.1%} | {pooled.declined:.1%} |" + (f" {pooled.span_recall:.1%} |" if span else ""))


def from_log(rows: list[dict]) -> FoldResult:
    """The pooled figures of the questions whose out-of-fold rows `rows` are (`test`'s log; no span)."""
    result = FoldResult("pooled", 0, 0, 0, 0, 0, 0, 0)
    for row in rows:
        confident = row["confident"]
        if row["in_scope"]:
            result.answerable += 1
            result.right += confident and row["right"]
        else:
            result.out_of_scope += 1
            result.declined_out += not confident
        result.confident += confident
        result.confident_right += confident and row["right"] and row["in_scope"]
    return result


def print_curve(log: list[dict], answerable: int) -> None:
    """The trade-off behind the gate: every question scored out of fold by its own fold's gate, pooled, the k
    it is surest of answered (precision over the k, accuracy over the answerable questions)."""
    ranked = sorted(log, key=lambda row: -row["raw"])
    steps = [k for k in (25, 50, 100, 150, 200, 300, 400, 600, 800) if k <= len(ranked)]
    print("\n| answers given (k, pooled out of fold) | " + " | ".join(str(k) for k in steps) + " |")
    print("|---|" + "---|" * len(steps))
    cells = []
    for k in steps:
        right = sum(1 for row in ranked[:k] if row["right"])
        cells.append(f"{right / k:.0%} / {right / max(1, answerable):.0%}")
    print("| precision / accuracy | " + " | ".join(cells) + " |")


def print_pooled(label: str, results: list[FoldResult]) -> None:
    pooled = mean(results)
    print(f"| {label} | {pooled.answerable} + {pooled.out_of_scope} | {pooled.accuracy:.1%} | {pooled.precision:.1%} "
          f"(answers {pooled.confident}) | {pooled.declined:.1%} |")


def summary(results: list[FoldResult]) -> str:
    return (f"{np.mean([r.accuracy for r in results]):.1%} | {np.mean([r.precision for r in results]):.1%} "
            f"(min {min(r.precision for r in results):.1%}) | {np.mean([r.declined for r in results]):.1%} "
            f"| {np.mean([r.span_recall for r in results]):.1%}")


def feature_mask(drop_prefixes: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray:
    return np.array([0.0 if n.startswith(drop_prefixes) else 1.0 for n in names])


def run_lodo(args: argparse.Namespace) -> None:
    data = Path(args.data)
    services = open_index(data)
    rows = read_bank(Path(args.bank))
    if args.only_legacy:
        rows = [r for r in rows if str(r["id"]).startswith("legacy-")]
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, date {date.today()}; bank: {len(rows)} questions")
    started = time.perf_counter()
    records = extract(services, rows, RetrievalOptions(), data, "full")
    print(f"features: {time.perf_counter() - started:.1f} s")
    windowed = None
    if args.window == "program" or args.gate_on != "index":
        started = time.perf_counter()
        windowed = extract(services, rows, RetrievalOptions(), data, "window", window="program")
        print(f"features, each question in its program's window: {time.perf_counter() - started:.1f} s")
    tested = {WHOLE_INDEX: records, **({PROGRAM_WINDOW: windowed} if windowed is not None else {})}
    if args.pipeline == "classic":
        for name, questions in tested.items():
            print(f"\nclassic answerer (KNOWLEDGE_PIPELINE=classic, nothing trained), {name}, per document:")
            print_table(classic_results(questions), span=False)
            print("\n| questions | questions (in + out) | accuracy | precision | out of scope declined |"
                  "\n|---|---|---|---|---|")
            for label, only in SUBSETS:
                print_pooled(label, classic_results(questions, only))
        services.close()
        return
    options = {"ranker": args.ranker, "tag": "full", "target": args.target, "criterion": args.criterion,
               "window_threshold_on": args.window_threshold_on,
               "gate_sets": gate_sets_for(records, windowed, args.gate_on)}
    if args.gate_drop:
        options["gate_mask"] = feature_mask(tuple(args.gate_drop.split(",")), GATE_FEATURES)
    started = time.perf_counter()
    log: list[dict] = []
    results = {} if args.no_lodo else lodo_windows(records, tested, log=log, **options)
    save_rankers()
    for name, folds in results.items():
        print(f"\nleave-one-document-out, {name}: {args.ranker} ranker, gate trained on the {args.gate_on} "
              f"questions, set for {args.target:.0%} out-of-fold precision ({args.criterion}; "
              f"{time.perf_counter() - started:.1f} s to train and test every fold):")
        print_table(folds)
        print("\n| questions | questions (in + out) | accuracy | precision | out of scope declined |\n|---|---|---|---|---|")
        by_id = {r.id: r for r in tested[name]}
        for label, only in SUBSETS:
            print_pooled(f"learned, {label}", [from_log([row for row in log if row["window"] == name
                                                          and only(by_id[row["id"]])])])
            print_pooled(f"classic, {label}", classic_results(tested[name], only))
        print_curve([row for row in log if row["window"] == name], sum(r.answerable for r in folds))
    if args.log and results:
        Path(args.log).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in log),
                                  encoding="utf-8")
    if not args.no_sweep:
        print("\n| threshold read as | precision the gate is set for (out of fold) | "
              + " | ".join(f"{name}: accuracy | precision (min fold) | out of scope declined | span in top 3"
                           for name in tested) + " |")
        print("|---|---|" + "---|---|---|---|" * len(tested))
    for criterion in () if args.no_sweep else args.sweep_criteria.split(","):
        for target in [float(t) for t in args.sweep_targets.split(",")]:
            swept = lodo_windows(records, tested, **{**options, "target": target, "criterion": criterion})
            print(f"| {criterion} | {target:.1%} | " + " | ".join(summary(swept[name]) for name in tested) + " |",
                  flush=True)
    if args.ablation:
        ablation(services, rows, records, data, results, options, args.retrievers, windowed,
                 tuple(v for v in args.variants.split(",") if v))
    if args.train:
        model = train(records, ranker=args.ranker, target=args.target, tag="full", criterion=args.criterion,
                      window_threshold_on=args.window_threshold_on,
                      gate_sets=options["gate_sets"])
        model.save()
        print(f"trained on {len(records)} questions (gate: the {args.gate_on} questions): threshold "
              f"{model.gate.threshold:.3f}, at a general entry point {model.gate.threshold_for(True):.3f} "
              "-> knowledge/models/")
    save_rankers()
    services.close()


def ablation(services: Services, rows: list[dict], records: list[Record], data: Path,  # type: ignore[no-untyped-def]
             results: dict[str, list[FoldResult]], options: dict, retrievers: bool = False,
             windowed: list[Record] | None = None, variants: tuple[str, ...] = ()) -> None:
    """Each stage removed or swapped, leave-one-document-out (both windows when the program window's records
    are given; the retriever variants need a feature pass each, whole index only). `variants`: when given,
    only the rows whose label holds one of these words are run (the full pipeline's always)."""
    tested = {WHOLE_INDEX: records, **({PROGRAM_WINDOW: windowed} if windowed is not None else {})}

    def wanted(label: str) -> bool:
        return not variants or any(word in label for word in variants)

    def row(label: str, found: dict[str, list[FoldResult]]) -> None:
        print(f"| {label} | " + " | ".join(summary(found[name]) for name in tested if name in found) + " |",
              flush=True)

    print("\n| variant | " + " | ".join(f"{name}: accuracy | precision (min fold) | out of scope declined | "
                                         "span in top 3" for name in tested) + " |")
    print("|---|" + "---|---|---|---|" * len(tested))
    row("full pipeline", results or lodo_windows(records, tested, **options))
    row("classic answerer (reference, no training)", {name: classic_results(q) for name, q in tested.items()})
    drops = (("no unit e5 similarity features",
              ("unit_dense", "rel_unit_dense", "rank_unit_dense", "margin_unit_dense", "in_passage_dense",
               "prev_dense", "next_dense"), ("unit_dense", "rank_unit_dense", "margin_unit_dense")),
             ("no answer-kind features", ("kind_", "match_", "ask_", "has_"), ("kind_", "asks_kind")),
             ("no candidate-context features (unit BM25, ranks and fusion, margins, neighbours)",
              ("bm25_unit", "cov_core", "cov_section", "rank_", "margin_", "in_passage_", "prev_", "next_"),
              ("rank_", "margin_cov_path", "margin_unit_dense", "margin_passage", "bm25_unit", "cov_core")))
    for label, unit_prefixes, gate_prefixes in filter(lambda drop: wanted(drop[0]), drops):
        row(label, lodo_windows(records, tested, **{**options, "mask": feature_mask(unit_prefixes, UNIT_FEATURES),
                                                    "gate_mask": feature_mask(gate_prefixes, GATE_FEATURES)}))
    for kind, label in (("lambdarank", "lambdarank trees alone (no linear ranker beside them)"),
                        ("linear", "linear pairwise ranker alone (no trees)")):
        if not wanted(label):
            continue
        row(label, lodo_windows(records, tested, **{**options, "ranker": kind}))
    if not retrievers:
        print("(retrievers removed or swapped: with --retrievers, each needs its own feature pass)")
    for label, retrieval in () if not retrievers else (("no BM25 retriever", RetrievalOptions(bm25=False)),
                             ("no e5 dense retriever", RetrievalOptions(dense=False)),
                             ("no FAQ question retriever", RetrievalOptions(faq=False)),
                             ("reciprocal rank fusion instead of the weighted sum", RetrievalOptions(fusion="rrf")),
                             ("with the passages BM25 or e5 alone ranks in its top 3 below the fused cut",
                              RetrievalOptions(deep=True))):
        name = label.split()[1] + "-" + retrieval.fusion + ("-deep" if retrieval.deep else "")
        variant = extract(services, rows, retrieval, data, name)
        row(label, {WHOLE_INDEX: lodo(variant, **{**options, "tag": name, "gate_sets": None})})
    if retrievers:
        plain = extract(services, rows, RetrievalOptions(), data, "plain", plain_units=True)
        row("bare sentences as units (no list lead-in, no whole lists)",
            {WHOLE_INDEX: lodo(plain, **{**options, "tag": "plain", "gate_sets": None})})
    print("(the FAQ question-matching stage has its own measure: benchmarks/faq_match_eval.py)")


def run_heldout(args: argparse.Namespace) -> None:
    """A held-out set (benchmarks/questions/heldout13/ by default), per document, with the shipped learned model and the
    classic answerer side by side. Measured once, with the final pipeline: never tune on it."""
    from knowledge.model import load_model

    if not Path(args.questions).is_dir():
        sys.exit(f"{args.questions}: no held-out set there; unseal the waiting one (benchmarks/questions/sealed/) or "
                 "write a new one (a measured set joins the bank)")
    data = Path(args.data)
    services = open_index(data)
    rows = read_bank(Path(args.questions))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"date {date.today()}; held-out: {len(rows)} questions")
    tested = {WHOLE_INDEX: extract(services, rows, RetrievalOptions(), data, "heldout")}
    if args.window == "program":
        tested[PROGRAM_WINDOW] = extract(services, rows, RetrievalOptions(), data, "heldout-window",
                                           window="program")
    model = load_model()
    for name, records in tested.items():
        folds = sorted({r.fold for r in records})
        learned = [test(model, [r for r in records if r.fold == fold], fold, general=name == WHOLE_INDEX)
                   for fold in folds]
        print(f"\nlearned pipeline (the shipped model, trained on the whole bank), {name}:")
        print_table(learned)
        print(f"\nclassic answerer, {name}:")
        print_table(classic_results(records), span=False)
    services.close()


def legacy(corpus: str, question_files: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        services = Services.create(Settings(data_dir=Path(tmp) / "data"))
        started = time.perf_counter()
        report = ingest_paths(services, [Path(corpus)])
        ingest_seconds = time.perf_counter() - started
        print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
              f"date {date.today()}")
        print(f"ingest: {len(report.results)} files, {report.chunks} chunks, {report.embedded} embedded, "
              f"{ingest_seconds:.1f} s (cold)")
        print("| questions | accuracy | abstention | precision | recall@5 | p50 ms | p95 ms |")
        print("|---|---|---|---|---|---|---|")
        for path in question_files:
            answers = answer_file(services.knowledge, Path(path), Path(tmp) / "answers.jsonl")
            result = score(read_jsonl(Path(path)), answers)
            print(f"| {Path(path).name} | {result.accuracy:.1%} | {result.abstention:.1%} | {result.precision:.1%} "
                  f"| {result.recall_at_5:.1%} | {result.p50_ms:.0f} | {result.p95_ms:.0f} |")
        services.close()


COMMANDS = ("lodo", "heldout", "legacy")


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand each (`lodo`, `heldout`, `legacy`); `--help` on each."""
    top = argparse.ArgumentParser(prog="knowledge_eval.py", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    lodo_cmd = commands.add_parser("lodo", help="leave-one-document-out over the bank (per fold, sweep, --train)")
    lodo_cmd.add_argument("--data", default=str(ROOT / "var" / "bench"))
    lodo_cmd.add_argument("--bank", default=str(BANK))
    lodo_cmd.add_argument("--ablation", action="store_true")
    lodo_cmd.add_argument("--train", action="store_true")
    lodo_cmd.add_argument("--only-legacy", action="store_true")
    lodo_cmd.add_argument("--target", type=float, default=TARGET_PRECISION,
                          help="precision the shipped gate is set for (out of fold), with --train")
    lodo_cmd.add_argument("--window-threshold-on", choices=("both", "window"), default="both",
                          help="the questions the program window's threshold is read on (both windows' or its own)")
    lodo_cmd.add_argument("--criterion", choices=CRITERIA, default=GATE_CRITERION,
                          help="how the gate's threshold reads the out-of-fold scores (knowledge/model.py)")
    lodo_cmd.add_argument("--no-sweep", action="store_true",
                          help="skip the table of gate precision targets and threshold criteria")
    lodo_cmd.add_argument("--sweep-criteria", default=",".join(CRITERIA), help="the criteria the sweep reads")
    lodo_cmd.add_argument("--sweep-targets", default=",".join(str(t) for t in SWEEP_TARGETS),
                          help="the precisions the sweep sets the gate for")
    lodo_cmd.add_argument("--no-lodo", action="store_true", help="skip the per-fold table (with --train)")
    lodo_cmd.add_argument("--log", help="write each question's out-of-fold gate score and outcome (JSONL)")
    lodo_cmd.add_argument("--pipeline", choices=("learned", "classic"), default="learned",
                          help="classic: the classic answerer's figures on the same questions (the baseline)")
    lodo_cmd.add_argument("--ranker", choices=RANKERS, default="ensemble")
    lodo_cmd.add_argument("--retrievers", action="store_true",
                          help="with --ablation: also remove or swap each retriever (a feature pass each)")
    lodo_cmd.add_argument("--variants", default="",
                          help="with --ablation: only the variants whose label holds one of these words "
                               "(comma-separated, e.g. 'candidate-context,alone'); every variant by default")
    lodo_cmd.add_argument("--gate-drop", default="",
                          help="gate features left out (comma-separated name prefixes; measures one feature)")
    lodo_cmd.add_argument("--window", choices=WINDOWS, default="index",
                          help="program: also ask each question in its own program's window (its document's "
                               "sources only, as at /p/<program>/) and report both; index: the whole index only")
    lodo_cmd.add_argument("--gate-on", choices=GATE_EXAMPLES, default=GATE_ON,
                          help="the questions the gate is trained on: asked of the whole index, in their "
                               "program's window, or both (the ranker learns from the whole index's)")
    heldout_cmd = commands.add_parser("heldout", help="a held-out set, once, with the shipped model")
    heldout_cmd.add_argument("--data", default=str(ROOT / "var" / "bench"))
    heldout_cmd.add_argument("--questions", default=str(ROOT / "benchmarks" / "questions" / "heldout13"))
    heldout_cmd.add_argument("--window", choices=WINDOWS, default="index",
                             help="program: also ask each question in its own program's window")
    legacy_cmd = commands.add_parser("legacy", help="the older question sets over one corpus folder (also: "
                                     "knowledge_eval.py CORPUS_DIR QUESTIONS.jsonl ...)")
    legacy_cmd.add_argument("corpus", help="a folder of documents, ingested into a temporary index")
    legacy_cmd.add_argument("questions", nargs="+", help="question files (JSONL)")
    return top


def parse_args(argv: list[str]) -> argparse.Namespace:
    """`argv` without the program name. The older form without a subcommand (a corpus folder first) is read
    as `legacy`; an option first (`--help`) is the top level's."""
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv = ["legacy", *argv]
    return parser().parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.command == "lodo":
        run_lodo(args)
    elif args.command == "heldout":
        run_heldout(args)
    else:
        legacy(args.corpus, args.questions)


if __name__ == "__main__":
    main(sys.argv[1:])
