"""How often the reply a person reads holds the answer: leave-one-document-out over the bank.

    python benchmarks/excerpt_eval.py [--data DIR] [--bank DIR]

A reply holds the answer when it is a right confident answer, or when it is an unsure reply and one of the
excerpts it quotes (knowledge/replies.py: the best units of different passages, each cut to EXCERPT_CHARS
around the question's rarest word) holds one of the question's `expect_any` strings. `span in top 3`
(knowledge_eval.py) counts units the reply may not show, uncut; this counts what is on the screen. Each
fold's ranker and gate are trained without the fold's document, as `knowledge_eval.py lodo` trains them
(its cached features and rankers are reused: run that first). Policies compared for the unsure reply: one
excerpt; a second only when the ranker rates it within a margin of the first (the rule before session 19);
two (shipped); and the excerpt length.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import knowledge_eval as ke  # noqa: E402

from bot.text import compact  # noqa: E402
from knowledge import replies  # noqa: E402
from knowledge.retrieval import Hit, RetrievalOptions  # noqa: E402

#: (name, the second excerpt's margin under the first: None = no second, inf = always, excerpt characters)
POLICIES: tuple[tuple[str, float | None, int], ...] = (
    ("one excerpt", None, replies.EXCERPT_CHARS),
    ("a second within 1.0 (before)", 1.0, replies.EXCERPT_CHARS),
    ("a second within 2.0", 2.0, replies.EXCERPT_CHARS),
    ("two (shipped)", float("inf"), replies.EXCERPT_CHARS),
    ("two, 160 characters", float("inf"), 160),
)


def shown(scored: list[tuple[float, str, Hit]], margin: float | None, chars: int, anchors: list[str]) -> list[str]:
    """The excerpts an unsure reply quotes under one policy (compacted, as the labels are compared)."""
    top = scored[0][0]
    close = [(text, hit) for score, text, hit in scored if score >= top - (margin if margin is not None else 0.0)]
    picks = replies.excerpt_picks(close)[:1 if margin is None else replies.MAX_EXCERPTS]
    return [compact(replies.short_excerpt(text, anchors, chars)) for text, _ in picks]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ke.ROOT / "var" / "bench"))
    parser.add_argument("--bank", default=str(ke.BANK))
    args = parser.parse_args(argv)
    data = Path(args.data)
    services = ke.open_index(data)
    rows = ke.read_bank(Path(args.bank))
    expect = {str(r["id"]): [compact(e) for e in r.get("expect_any") or [] if e] for r in rows}
    whole = ke.extract(services, rows, RetrievalOptions(), data, "full")
    window = ke.extract(services, rows, RetrievalOptions(), data, "window", window="program")
    gate_sets = ke.gate_sets_for(whole, window, "both")
    assert gate_sets is not None
    tested = {ke.WHOLE_INDEX: whole, ke.PROGRAM_WINDOW: window}
    # per window and policy: answerable questions, replies holding the answer, excerpts quoted
    counts = {name: {policy[0]: [0, 0, 0] for policy in POLICIES} for name in tested}
    for fold in sorted({r.fold for r in whole}):
        model = ke.train([r for r in whole if r.fold != fold], tag="full",
                         gate_sets=tuple([r for r in chosen if r.fold != fold] for chosen in gate_sets))
        for name, records in tested.items():
            for record in (r for r in records if r.fold == fold and r.in_scope):
                keys = expect[record.id]
                for policy in POLICIES:
                    counts[name][policy[0]][0] += 1
                if record.declined or not len(record.x):
                    continue
                x, right = ke._gate_row(record, model.ranker)
                if bool(model.gate.confident(x, name == ke.WHOLE_INDEX)[0]):
                    for policy in POLICIES:
                        counts[name][policy[0]][1] += int(bool(right))
                    continue
                scores = model.ranker.score(record.x)
                scored = [(float(scores[i]), record.candidates[i].unit.text, record.candidates[i].hit)
                          for i in np.argsort(-scores, kind="stable")]
                anchors = replies.anchors_of(record.retrieval)
                for label, margin, chars in POLICIES:
                    excerpts = shown(scored, margin, chars, anchors)
                    counts[name][label][1] += any(k in q for k in keys for q in excerpts)
                    counts[name][label][2] += len(excerpts)
    print("| window | unsure reply quotes | answer in the reply (answerable questions) | excerpts quoted |")
    print("|---|---|---|---|")
    for name, by_policy in counts.items():
        for label, (answerable, held, quoted) in by_policy.items():
            print(f"| {name} | {label} | {held / max(1, answerable):.1%} ({held} of {answerable}) | {quoted} |")
    services.close()


if __name__ == "__main__":
    main(sys.argv[1:])
