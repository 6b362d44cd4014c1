"""Fit the answer model's weights (knowledge/answering.py) on labelled questions.

    python benchmarks/calibrate.py ranker     DATA_DIR QUESTIONS.jsonl [DATA_DIR QUESTIONS.jsonl ...]
    python benchmarks/calibrate.py confidence DATA_DIR QUESTIONS.jsonl [...]
    python benchmarks/calibrate.py crossval   DATA_DIR A.jsonl B.jsonl

Each DATA_DIR is an ingested index. `ranker` fits RANKER_WEIGHTS, the sentence
ranker, listwise: for each question, a softmax over its candidate sentences,
with the sentences containing one of `expect_any` as the targets. `confidence`
fits WEIGHTS, an L2-regularised logistic regression that says whether the
chosen answer is right (out-of-scope questions are negatives). `crossval` fits
the ranker on A and reports how often it picks a right sentence on B, and the
other way round: the figure to trust, since a ranker always looks good on the
questions it was fitted on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from bot.services import Services
from bot.settings import Settings
from bot.text import compact
from knowledge.answering import DENSE_CENTER, RANKER_WEIGHTS, WEIGHTS, answer_from, candidates_for

RANKER_FEATURES = list(RANKER_WEIGHTS)
CONFIDENCE_FEATURES = [name for name in WEIGHTS if name != "bias"]


def _rows(questions: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in Path(questions).read_text(encoding="utf-8").splitlines() if line.strip()]


def _services(data_dir: str) -> Services:
    return Services.create(Settings(data_dir=Path(data_dir)))


def ranker_lists(data_dir: str, questions: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per in-scope question: candidate features and which candidates contain the expected answer."""
    services = _services(data_dir)
    lists = []
    for row in _rows(questions):
        if not row.get("in_scope", True):
            continue
        candidates, sentences_of = candidates_for(services.knowledge.retrieve(row["question"]))
        if not candidates:
            continue
        x = np.array([[c.features[n] for n in RANKER_FEATURES] for c in candidates])
        y = np.array([any(compact(e) in compact(sentences_of[c.hit_no][c.sentence_no]) for e in row["expect_any"])
                      for c in candidates])
        lists.append((x, y))
    return lists


def fit_ranker(lists: list[tuple[np.ndarray, np.ndarray]], l2: float = 0.03, steps: int = 4000,
               rate: float = 0.5) -> np.ndarray:
    usable = [(x, y) for x, y in lists if y.any()]
    w = np.zeros(len(RANKER_FEATURES))
    for _ in range(steps):
        grad = l2 * w
        for x, y in usable:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            q = np.where(y, p, 0.0)
            q /= q.sum()
            grad += (p - q) @ x / len(usable)
        w -= rate * grad
    return w


def top1(lists: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray) -> tuple[int, int, int]:
    """(right first picks, questions with a right candidate at all, questions)."""
    right = sum(bool(y[int(np.argmax(x @ w))]) for x, y in lists)
    return right, sum(bool(y.any()) for _, y in lists), len(lists)


def confidence_rows(data_dir: str, questions: str) -> tuple[list[list[float]], list[int]]:
    services = _services(data_dir)
    xs, ys = [], []
    for row in _rows(questions):
        answer = answer_from(services.knowledge.retrieve(row["question"]), 0.5)
        if answer.kind in ("faq", "none"):
            continue  # FAQ matches have their own rule
        right = row.get("in_scope", True) and any(compact(e) in compact(answer.body) for e in row["expect_any"])
        features = dict(answer.features)
        features["dense"] = features.get("dense", 0.0) - DENSE_CENTER
        xs.append([features.get(name, 0.0) for name in CONFIDENCE_FEATURES])
        ys.append(1 if right else 0)
    return xs, ys


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.002, steps: int = 20000, rate: float = 0.2) -> np.ndarray:
    x1 = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x1.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x1 @ w))
        grad = x1.T @ (p - y) / len(y) + l2 * np.r_[0, w[1:]]
        w -= rate * grad
    return w


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    return list(zip(args[::2], args[1::2], strict=True))


def main(mode: str, args: list[str]) -> None:
    if mode == "ranker":
        lists = [item for data_dir, q in _pairs(args) for item in ranker_lists(data_dir, q)]
        w = fit_ranker(lists)
        print("RANKER_WEIGHTS =", {n: round(float(v), 2) for n, v in zip(RANKER_FEATURES, w, strict=True)})
        print("right first pick (fitted on these): {} of {} answerable, {} questions".format(*top1(lists, w)))
    elif mode == "crossval":
        data_dir, first, second = args
        a, b = ranker_lists(data_dir, first), ranker_lists(data_dir, second)
        current = np.array([RANKER_WEIGHTS[n] for n in RANKER_FEATURES])
        for name, train, test in ((Path(first).name, a, b), (Path(second).name, b, a)):
            w = fit_ranker(train)
            print(f"fitted on {name}: right first pick on the other set %d of %d answerable (%d questions)"
                  % top1(test, w))
        for name, lists in ((Path(first).name, a), (Path(second).name, b)):
            print(f"current weights on {name}: right first pick %d of %d answerable (%d questions)"
                  % top1(lists, current))
    elif mode == "confidence":
        xs: list[list[float]] = []
        ys: list[int] = []
        for data_dir, q in _pairs(args):
            more_x, more_y = confidence_rows(data_dir, q)
            xs += more_x
            ys += more_y
        x, y = np.array(xs), np.array(ys)
        w = fit_logistic(x, y)
        p = 1 / (1 + np.exp(-(np.hstack([np.ones((len(x), 1)), x]) @ w)))
        weights = {"bias": round(float(w[0]), 2)} | {n: round(float(v), 2)
                                                     for n, v in zip(CONFIDENCE_FEATURES, w[1:], strict=True)}
        print("WEIGHTS =", weights)
        for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
            confident = p >= threshold
            precision = (y[confident] == 1).mean() if confident.any() else 0.0
            print(f"threshold {threshold}: confident {confident.sum()}/{len(y)}, precision {precision:.2f}, "
                  f"recall of right answers {(confident & (y == 1)).sum()}/{(y == 1).sum()}")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
