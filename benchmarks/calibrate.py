"""Fit the answer-confidence weights (knowledge/answering.py WEIGHTS) on labelled questions.

    python benchmarks/calibrate.py DATA_DIR QUESTIONS.jsonl [DATA_DIR QUESTIONS.jsonl ...]

Each DATA_DIR is an ingested index; each question is labelled correct when the
extractive answer contains one of `expect_any` (out-of-scope questions are
negatives). Fits an L2-regularised logistic regression on the answer features
and prints the weights to paste into WEIGHTS, with the accuracy they reach.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from bot.services import Services
from bot.settings import Settings
from bot.text import compact
from knowledge.answering import DENSE_CENTER, WEIGHTS, answer_from

FEATURES = [name for name in WEIGHTS if name != "bias"]


def collect(data_dir: str, questions: str) -> tuple[list[list[float]], list[int]]:
    services = Services.create(Settings(MADOGUCHI_DATA_DIR=Path(data_dir)))
    xs, ys = [], []
    for line in Path(questions).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        answer = answer_from(services.knowledge.retrieve(row["question"]), 0.5)
        if answer.kind == "faq":
            continue  # FAQ matches have their own rule
        right = row.get("in_scope", True) and any(compact(e) in compact(answer.body) for e in row["expect_any"])
        features = dict(answer.features)
        features["dense"] = features.get("dense", 0.0) - DENSE_CENTER
        xs.append([features.get(name, 0.0) for name in FEATURES])
        ys.append(1 if right else 0)
    return xs, ys


def fit(x: np.ndarray, y: np.ndarray, l2: float = 0.002, steps: int = 20000, rate: float = 0.2) -> np.ndarray:
    x1 = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x1.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x1 @ w))
        grad = x1.T @ (p - y) / len(y) + l2 * np.r_[0, w[1:]]
        w -= rate * grad
    return w


def main(args: list[str]) -> None:
    xs: list[list[float]] = []
    ys: list[int] = []
    for data_dir, questions in zip(args[::2], args[1::2], strict=True):
        more_x, more_y = collect(data_dir, questions)
        xs += more_x
        ys += more_y
    x, y = np.array(xs), np.array(ys)
    w = fit(x, y)
    p = 1 / (1 + np.exp(-(np.hstack([np.ones((len(x), 1)), x]) @ w)))
    weights = {"bias": round(float(w[0]), 2)} | {n: round(float(v), 2) for n, v in zip(FEATURES, w[1:], strict=True)}
    print("WEIGHTS =", weights)
    for threshold in (0.3, 0.4, 0.5, 0.6):
        confident = p >= threshold
        precision = (y[confident] == 1).mean() if confident.any() else 0.0
        print(f"threshold {threshold}: confident {confident.sum()}/{len(y)}, precision {precision:.2f}, "
              f"recall of right answers {(confident & (y == 1)).sum()}/{(y == 1).sum()}")


if __name__ == "__main__":
    main(sys.argv[1:])
