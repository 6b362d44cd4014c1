"""The learned stages: a unit ranker and a calibrated answer gate, trained from the labeled bank.

- Ranker: a linear scoring function over the unit features (knowledge/features.py), trained pairwise
  (RankNet's logistic loss on every right/wrong unit pair of a question, the linear case of
  learning to rank), so it learns which unit of one question's candidates answers it.
- Gate: logistic regression over the features of the question and its best unit, then isotonic
  regression fitted on out-of-fold predictions, so its output is the probability the answer is right;
  the threshold is the lowest one whose out-of-fold precision is at least TARGET_PRECISION.

Both are plain numpy (a few hundred numbers), stored as JSON in knowledge/models/ and loaded at run
time; `python benchmarks/knowledge_eval.py --train` retrains them from the bank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).with_name("models") / "answer_model.json"
#: The precision a confident answer must reach: a wrong deadline stated confidently is worse than a handoff.
TARGET_PRECISION = 0.95
#: L2 penalty of both linear models: the bank is a few hundred questions; small weights generalise.
L2 = 0.01
#: Gradient steps of the (convex) fits; they converge well before this on the bank.
STEPS = 400
#: Most right/wrong pairs kept per question (the rest sampled): a question with 100 candidates would
#: otherwise weigh 20 times a question with 5.
MAX_PAIRS = 200


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    return mean, scale


def _adam(gradient, w: np.ndarray, steps: int = STEPS, rate: float = 0.05) -> np.ndarray:  # type: ignore[no-untyped-def]
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, steps + 1):
        g = gradient(w)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - rate * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w


@dataclass
class Ranker:
    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    names: tuple[str, ...] = ()

    def score(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        return ((x - self.mean) / self.scale) @ self.weights

    @classmethod
    def fit(cls, groups: list[tuple[np.ndarray, np.ndarray]], names: tuple[str, ...] = (),
            seed: int = 0) -> Ranker:
        """`groups`: per question, (unit features, 1 for a unit that answers it)."""
        rng = np.random.default_rng(seed)
        stacked = np.vstack([x for x, _ in groups if len(x)]).astype(np.float64)
        mean, scale = _standardize(stacked)
        diffs = []
        for x, y in groups:
            pos, neg = np.flatnonzero(y > 0), np.flatnonzero(y <= 0)
            if not len(pos) or not len(neg):
                continue
            pairs = np.array([(p, n) for p in pos for n in neg])
            if len(pairs) > MAX_PAIRS:
                pairs = pairs[rng.choice(len(pairs), MAX_PAIRS, replace=False)]
            z = (x - mean) / scale
            diffs.append(z[pairs[:, 0]] - z[pairs[:, 1]])
        d = np.vstack(diffs).astype(np.float64) if diffs else np.zeros((1, stacked.shape[1]))

        def gradient(w: np.ndarray) -> np.ndarray:
            p = 1.0 / (1.0 + np.exp(np.clip(d @ w, -30, 30)))  # P(wrong order)
            return -(p @ d) / len(d) + L2 * w

        return cls(_adam(gradient, np.zeros(d.shape[1])), mean, scale, names)


@dataclass
class Gate:
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    #: isotonic calibration: raw score knots and the probability at each (piecewise linear between)
    knots_x: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    knots_y: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    threshold: float = 0.5
    names: tuple[str, ...] = ()

    def raw(self, x: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(x) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def probability(self, x: np.ndarray) -> np.ndarray:
        return np.interp(self.raw(x), self.knots_x, self.knots_y)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, names: tuple[str, ...] = ()) -> Gate:
        x = np.asarray(x, dtype=np.float64)
        mean, scale = _standardize(x)
        z = (x - mean) / scale
        positive = max(1.0, float(y.sum()))
        weight = np.where(y > 0, len(y) / (2 * positive), len(y) / (2 * max(1.0, len(y) - positive)))
        zb = np.hstack([z, np.ones((len(z), 1))])

        def gradient(w: np.ndarray) -> np.ndarray:
            p = 1.0 / (1.0 + np.exp(-np.clip(zb @ w, -30, 30)))
            g = ((p - y) * weight) @ zb / len(zb)
            g[:-1] += L2 * w[:-1]
            return g

        w = _adam(gradient, np.zeros(zb.shape[1]))
        return cls(w[:-1], float(w[-1]), mean, scale, names=names)

    def confident(self, x: np.ndarray) -> np.ndarray:
        """Whether to answer: the raw score reaches the threshold chosen on out-of-fold raw scores (finer
        than the calibrated probability, whose isotonic steps tie many scores)."""
        return self.raw(x) >= self.threshold

    def calibrate(self, raw: np.ndarray, y: np.ndarray, target: float = TARGET_PRECISION) -> None:
        """Isotonic calibration and the threshold, from out-of-fold raw scores and their outcomes."""
        self.knots_x, self.knots_y = isotonic(raw, y)
        self.threshold = precision_threshold(raw, y, target)


def isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing step function of x closest to y (as knots)."""
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    blocks: list[list[float]] = []  # [sum of y, count, min x, max x]
    for xi, yi in zip(xs, ys, strict=True):
        blocks.append([yi, 1.0, xi, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, c, lo, hi = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][3] = hi
    knots_x, knots_y = [], []
    for s, c, lo, hi in blocks:
        knots_x += [lo, hi]
        knots_y += [s / c, s / c]
    if len(knots_x) < 2:
        return np.array([0.0, 1.0]), np.array([0.0, 0.0])
    return np.array(knots_x), np.array(knots_y)


def precision_threshold(probability: np.ndarray, y: np.ndarray, target: float) -> float:
    """The lowest threshold at which the answers given (probability >= it) are right at least `target`
    of the time; 1.01 (answer nothing) when no threshold reaches it."""
    candidates = sorted(set(np.round(probability, 6).tolist()))
    for threshold in candidates:
        given = probability >= threshold
        if given.sum() and y[given].mean() >= target:
            return float(threshold)
    return 1.01


@dataclass
class AnswerModel:
    ranker: Ranker
    gate: Gate
    trained_on: str = ""
    #: the curated-FAQ gate: answer with the FAQ entry whose question the user's matches (dense and lexical
    #: question-to-question similarity); trained on the bank's questions about a FAQ document
    faq_gate: Gate | None = None

    def to_json(self) -> dict:
        return {
            "trained_on": self.trained_on,
            "ranker": {"names": list(self.ranker.names), "weights": self.ranker.weights.round(6).tolist(),
                       "mean": self.ranker.mean.round(6).tolist(), "scale": self.ranker.scale.round(6).tolist()},
            "gate": _gate_json(self.gate),
            "faq_gate": _gate_json(self.faq_gate) if self.faq_gate is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> AnswerModel:
        r = data["ranker"]
        ranker = Ranker(np.array(r["weights"]), np.array(r["mean"]), np.array(r["scale"]), tuple(r["names"]))
        faq = data.get("faq_gate")
        return cls(ranker, _gate_from(data["gate"]), data.get("trained_on", ""), _gate_from(faq) if faq else None)

    def save(self, path: Path = MODEL_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _gate_json(gate: Gate) -> dict:
    return {"names": list(gate.names), "weights": gate.weights.round(6).tolist(), "bias": round(gate.bias, 6),
            "mean": gate.mean.round(6).tolist(), "scale": gate.scale.round(6).tolist(),
            "knots_x": gate.knots_x.round(6).tolist(), "knots_y": gate.knots_y.round(6).tolist(),
            "threshold": gate.threshold}


def _gate_from(g: dict) -> Gate:
    return Gate(np.array(g["weights"]), float(g["bias"]), np.array(g["mean"]), np.array(g["scale"]),
                np.array(g["knots_x"]), np.array(g["knots_y"]), float(g["threshold"]), tuple(g["names"]))


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> AnswerModel:
    """The shipped model; its feature names must be the ones knowledge/features.py computes."""
    from knowledge.features import GATE_FEATURES, UNIT_FEATURES

    model = AnswerModel.from_json(json.loads(path.read_text(encoding="utf-8")))
    if model.ranker.names != UNIT_FEATURES or model.gate.names != GATE_FEATURES:
        raise ValueError(f"{path} was trained on other features; retrain it (benchmarks/knowledge_eval.py --train)")
    return model
