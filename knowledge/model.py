"""The learned stages: a unit ranker and a calibrated answer gate, trained from the labeled bank.

- Ranker: LightGBM's lambdarank (gradient-boosted trees, grouped by question) over the unit features
  (knowledge/features.py), so it learns which unit of one question's candidates answers it, plus the
  linear pairwise ranker (RankNet's logistic loss on every right/wrong unit pair, the linear case of
  learning to rank), their scores summed (`EnsembleRanker`); the trees are the text file
  knowledge/models/ranker.lgb.txt, the linear weights are in the JSON model. Each alone stays for
  comparison (`LambdaRanker`, `Ranker`).
- Gate: logistic regression over the features of the question and its best unit, then isotonic
  regression fitted on out-of-fold predictions, so its output is the probability the answer is right;
  the threshold is the lowest one whose out-of-fold precision is at least TARGET_PRECISION.

The gate is plain numpy (a few hundred numbers), stored as JSON in knowledge/models/ with the ranker's
file name, and loaded at run time; `python benchmarks/knowledge_eval.py lodo --train` retrains both from
the bank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from knowledge.features import GATE_FEATURES, UNIT_FEATURES

MODEL_PATH = Path(__file__).with_name("models") / "answer_model.json"
#: The lambdarank trees, beside the JSON model.
RANKER_FILE = "ranker.lgb.txt"
#: LightGBM's lambdarank settings: small trees (15 leaves, 20 units a leaf at least) and a slow rate suit a
#: bank of about a thousand questions; one thread (the machine is shared) and a fixed seed (reproducible).
LAMBDARANK_PARAMS = {"objective": "lambdarank", "num_leaves": 15, "min_data_in_leaf": 20, "learning_rate": 0.05,
                     "feature_fraction": 0.8, "lambdarank_truncation_level": 10, "num_threads": 1, "seed": 0,
                     "deterministic": True, "verbose": -1}
#: Boosting rounds of the lambdarank ranker.
LAMBDARANK_ROUNDS = 200
#: Weight of the linear ranker's score beside the trees' in the shipped ensemble (1: the two scores' spreads
#: are alike on the bank; 0.5 and 1 measured, docs/BENCHMARKS.md).
LINEAR_SHARE = 1.0
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


class LambdaRanker:
    """Gradient-boosted trees trained with lambdarank, grouped by question (LightGBM)."""

    kind = "lambdarank"

    def __init__(self, booster, names: tuple[str, ...] = ()) -> None:  # type: ignore[no-untyped-def]
        self.booster = booster
        self.names = names

    def score(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(np.asarray(x, dtype=np.float64), num_threads=1))

    @classmethod
    def fit(cls, groups: list[tuple[np.ndarray, np.ndarray]], names: tuple[str, ...] = (),
            seed: int = 0) -> LambdaRanker:
        """`groups`: per question, (unit features, 1 for a unit that answers it); questions none or all of
        whose units answer it teach no order and are left out."""
        import lightgbm  # lazy: LightGBM (and scipy) load only when the learned pipeline runs

        kept = [(x, y) for x, y in groups if len(x) and 0 < (y > 0).sum() < len(y)]
        data = lightgbm.Dataset(np.vstack([x for x, _ in kept]).astype(np.float64),
                                label=np.concatenate([(y > 0).astype(float) for _, y in kept]),
                                group=[len(x) for x, _ in kept], free_raw_data=True)
        booster = lightgbm.train({**LAMBDARANK_PARAMS, "seed": seed}, data, num_boost_round=LAMBDARANK_ROUNDS)
        return cls(booster, names)

    def to_string(self) -> str:
        return str(self.booster.model_to_string())

    @classmethod
    def from_string(cls, text: str, names: tuple[str, ...]) -> LambdaRanker:
        import lightgbm  # lazy: as in fit, the classic pipeline never pays for it

        return cls(lightgbm.Booster(model_str=text), names)


class EnsembleRanker:
    """The lambdarank trees plus the linear pairwise ranker, their scores summed (LINEAR_SHARE of the linear
    one): the trees order one question's units, the linear score keeps a scale that means the same on every
    question, which the gate's score features need on a document it never saw (docs/BENCHMARKS.md)."""

    kind = "ensemble"

    def __init__(self, trees: LambdaRanker, linear: Ranker, share: float, names: tuple[str, ...] = ()) -> None:
        self.trees, self.linear, self.share, self.names = trees, linear, share, names

    def score(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        return self.trees.score(x) + self.share * self.linear.score(x)

    @classmethod
    def fit(cls, groups: list[tuple[np.ndarray, np.ndarray]], names: tuple[str, ...] = (),
            seed: int = 0) -> EnsembleRanker:
        return cls(LambdaRanker.fit(groups, names, seed), Ranker.fit(groups, names, seed), LINEAR_SHARE, names)


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
    #: The threshold at a general entry point of an installation with several programs (None: `threshold`).
    #: There the candidates span every program's documents, so a score means less than in one program's
    #: window (another program's sibling fact scores like the asker's own): set on the out-of-fold scores of
    #: questions asked of the whole index alone, never below `threshold`.
    general_threshold: float | None = None

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

    def confident(self, x: np.ndarray, general: bool = False) -> np.ndarray:
        """Whether to answer: the raw score reaches the threshold chosen on out-of-fold raw scores (finer
        than the calibrated probability, whose isotonic steps tie many scores); `general`: asked at a general
        entry point of an installation with several programs (`general_threshold`)."""
        return self.raw(x) >= self.threshold_for(general)

    def threshold_for(self, general: bool) -> float:
        if general and self.general_threshold is not None:
            return max(self.threshold, self.general_threshold)
        return self.threshold

    def calibrate(self, raw: np.ndarray, y: np.ndarray, target: float = TARGET_PRECISION,
                  folds: np.ndarray | None = None, criterion: str = "pooled") -> None:
        """Isotonic calibration and the threshold, from out-of-fold raw scores and their outcomes (and the
        document each came from, for the criteria that read them per document: `precision_threshold`)."""
        self.knots_x, self.knots_y = isotonic(raw, y)
        self.threshold = precision_threshold(raw, y, target, folds, criterion)


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


#: How the gate's threshold is read from out-of-fold scores (`precision_threshold`): "pooled" (the answers of
#: every training document together reach the target), "wilson" (the one-sided 95% lower bound of that
#: precision does: few answers prove little), "fold-min" (each training document's answers reach it: the
#: target is meant for every new document, and documents differ more than questions do).
CRITERIA = ("pooled", "wilson", "fold-min")
#: The criterion the shipped gate uses (chosen by leave-one-document-out, docs/BENCHMARKS.md).
GATE_CRITERION = "pooled"
#: z of the one-sided 95% Wilson lower bound.
WILSON_Z = 1.645


def wilson_lower(right: np.ndarray, given: np.ndarray, z: float = WILSON_Z) -> np.ndarray:
    """The Wilson score interval's lower bound of right/given (0 where nothing is given)."""
    n = np.maximum(given, 1).astype(float)
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.where(given > 0, (centre - spread) / (1 + z * z / n), 0.0)


def precision_threshold(probability: np.ndarray, y: np.ndarray, target: float, folds: np.ndarray | None = None,
                        criterion: str = "pooled") -> float:
    """The lowest threshold at which the answers given (probability >= it) are right at least `target`
    of the time, read as `criterion` says (CRITERIA; "fold-min" needs each score's document in `folds`);
    1.01 (answer nothing) when no threshold reaches it."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown threshold criterion {criterion!r}")
    scores = np.round(np.asarray(probability, dtype=float), 6)
    y = np.asarray(y, dtype=float)
    candidates = np.unique(scores)  # ascending
    if not len(candidates):
        return 1.01

    def counts(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Among the scores `mask` keeps: the answers given and the right ones at each candidate threshold."""
        s, right = scores[mask], y[mask]
        ordered = np.argsort(s, kind="stable")
        s, right = s[ordered], right[ordered]
        start = np.searchsorted(s, candidates, side="left")
        tail_right = np.concatenate([np.cumsum(right[::-1])[::-1], [0.0]])
        return len(s) - start, tail_right[start]

    if criterion == "fold-min":
        if folds is None:
            raise ValueError("the fold-min criterion needs each score's fold")
        folds = np.asarray(folds)
        ok = np.ones(len(candidates), dtype=bool)
        for fold in np.unique(folds):
            given, right = counts(folds == fold)
            ok &= (given == 0) | (right >= target * given - 1e-9)
        given, _ = counts(np.ones(len(scores), dtype=bool))
        ok &= given > 0
    else:
        given, right = counts(np.ones(len(scores), dtype=bool))
        if criterion == "wilson":
            ok = (given > 0) & (wilson_lower(right, given) >= target)
        else:
            ok = (given > 0) & (right >= target * given - 1e-9)
    hits = np.flatnonzero(ok)
    return float(candidates[hits[0]]) if len(hits) else 1.01


@dataclass
class AnswerModel:
    ranker: Ranker | LambdaRanker | EnsembleRanker
    gate: Gate
    trained_on: str = ""

    def to_json(self) -> dict:
        ranker: dict
        if isinstance(self.ranker, EnsembleRanker):
            ranker = {"kind": "ensemble", "names": list(self.ranker.names), "file": RANKER_FILE,
                      "share": self.ranker.share, "linear": _linear_json(self.ranker.linear)}
        elif isinstance(self.ranker, LambdaRanker):
            ranker = {"kind": "lambdarank", "names": list(self.ranker.names), "file": RANKER_FILE}
        else:
            ranker = {"kind": "linear", **_linear_json(self.ranker)}
        return {
            "trained_on": self.trained_on,
            "ranker": ranker,
            "gate": _gate_json(self.gate),
        }

    @classmethod
    def from_json(cls, data: dict, folder: Path = MODEL_PATH.parent) -> AnswerModel:
        r = data["ranker"]
        ranker: Ranker | LambdaRanker | EnsembleRanker
        if r.get("kind") in ("lambdarank", "ensemble"):
            ranker = LambdaRanker.from_string((folder / r["file"]).read_text(encoding="utf-8"), tuple(r["names"]))
            if r["kind"] == "ensemble":
                ranker = EnsembleRanker(ranker, _linear_from(r["linear"]), float(r["share"]), tuple(r["names"]))
        else:
            ranker = _linear_from(r)
        return cls(ranker, _gate_from(data["gate"]), data.get("trained_on", ""))

    def save(self, path: Path = MODEL_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        trees = self.ranker.trees if isinstance(self.ranker, EnsembleRanker) else self.ranker
        if isinstance(trees, LambdaRanker):
            (path.parent / RANKER_FILE).write_text(trees.to_string(), encoding="utf-8")
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _linear_json(ranker: Ranker) -> dict:
    return {"names": list(ranker.names), "weights": ranker.weights.round(6).tolist(),
            "mean": ranker.mean.round(6).tolist(), "scale": ranker.scale.round(6).tolist()}


def _linear_from(r: dict) -> Ranker:
    return Ranker(np.array(r["weights"]), np.array(r["mean"]), np.array(r["scale"]), tuple(r["names"]))


def _gate_json(gate: Gate) -> dict:
    return {"names": list(gate.names), "weights": gate.weights.round(6).tolist(), "bias": round(gate.bias, 6),
            "mean": gate.mean.round(6).tolist(), "scale": gate.scale.round(6).tolist(),
            "knots_x": gate.knots_x.round(6).tolist(), "knots_y": gate.knots_y.round(6).tolist(),
            "threshold": gate.threshold,
            **({"general_threshold": gate.general_threshold} if gate.general_threshold is not None else {})}


def _gate_from(g: dict) -> Gate:
    return Gate(np.array(g["weights"]), float(g["bias"]), np.array(g["mean"]), np.array(g["scale"]),
                np.array(g["knots_x"]), np.array(g["knots_y"]), float(g["threshold"]), tuple(g["names"]),
                None if g.get("general_threshold") is None else float(g["general_threshold"]))


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> AnswerModel:
    """The shipped model; its feature names must be the ones knowledge/features.py computes."""

    model = AnswerModel.from_json(json.loads(path.read_text(encoding="utf-8")), path.parent)
    if model.ranker.names != UNIT_FEATURES or model.gate.names != GATE_FEATURES:
        raise ValueError(f"{path} was trained on other features; retrain it (benchmarks/knowledge_eval.py --train)")
    return model
