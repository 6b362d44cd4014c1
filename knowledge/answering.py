"""Extractive answers with a citation, and the confidence that decides whether to give one.

The answer is the sentence in the top passages that best covers the
question's content words (weighted by idf) and has the kind of fact the
question asks for (いくら -> an amount in 円, いつ -> a date, 何回 -> a count),
at most about 300 characters, then the source's title and section. A curated
FAQ entry whose question matches answers with its own answer.

Confidence is a logistic score over a few features (how much of the question
the passage covers, whether the asked-for kind of fact is there, how many of
the question's words the corpus has never seen, dense similarity), fitted on
the dev set by `benchmarks/calibrate.py`. Below the threshold the bot says it
is not sure instead of answering.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from knowledge.chunking import split_sentences
from knowledge.retrieval import Hit, Retrieval
from knowledge.tokenize import tokens

MAX_ANSWER_CHARS = 300
NEIGHBOUR_MAX_CHARS = 200
SENTENCE_POOL = 5

# (question cue, pattern the answer sentence should contain)
ANSWER_TYPES: list[tuple[re.Pattern[str], re.Pattern[str]]] = [
    (re.compile(r"いくら|金額|単価|上限額|予算|費用|支給され|何円"), re.compile(r"\d[\d,]*\s*(?:万|千)?円")),
    (re.compile(r"何回|回数"), re.compile(r"\d+\s*回")),
    (re.compile(r"何時|時間帯|開いて|受付時間|営業時間"), re.compile(r"\d{1,2}\s*(?::|時)\s*\d{0,2}")),
    (re.compile(r"何年以上|何年"), re.compile(r"\d+\s*年")),
    (re.compile(r"何人|人数"), re.compile(r"\d+\s*(?:人|名)")),
    (re.compile(r"どのくらい|どれくらい|期間は|何か月|何ヶ月"), re.compile(r"\d+\s*(?:か月|ヶ月|カ月|箇月|週間|日間|年間|時間|年)")),
    # "Which tool / how" is asked more specifically than "when": 「どのツールで開催されますか」 wants the tool.
    # A product name (Teams, Zoom, Webex): a capitalised word, not an acronym like WEB or URL.
    (re.compile(r"ツール|アプリ|ソフト"), re.compile(r"Teams|Zoom|Webex|Google\s*Meet|Skype|[A-Z][a-z]{2,}")),
    (re.compile(r"方法|手段|どうやって"), re.compile(r"メール|電話|郵送|FAX|ファクス|フォーム|Web|ウェブ|持参|オンライン|システム")),
    (re.compile(r"いつ|締切|期限|何日|日程|開催され"),
     re.compile(r"\d+\s*月\s*\d+\s*日|\d{4}[/-]\d{1,2}[/-]\d{1,2}|令和\s*\d+\s*年\s*\d+\s*月")),
    (re.compile(r"名称|名前"), re.compile(r"[A-Za-z]{3,}|「[^」]{2,30}」|『[^』]{2,30}』")),
    (re.compile(r"どこ|部署|問い?合わ?せ先|事務局は|担当課"),
     re.compile(r"[課室部局所]|株式会社|研究所|センター|事務局|在住|フォーム")),
]

# Logistic confidence (see module docstring); refit with benchmarks/calibrate.py.
WEIGHTS = {"bias": -0.44, "coverage": -0.57, "sentence": 1.02, "type_ok": 1.0, "unknown": -2.54, "dense": 2.73}
DENSE_CENTER = 0.80


@dataclass
class Citation:
    source: str
    title: str
    section: str
    score: float
    page: int | None = None

    def label(self) -> str:
        parts = [self.title]
        if self.section:
            parts.append(self.section)
        if self.page:
            parts.append(f"p.{self.page}")
        return " ／ ".join(parts)


@dataclass
class Answer:
    question: str
    body: str
    confident: bool
    confidence: float
    citations: list[Citation] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    kind: str = "extractive"  # extractive | faq | generated | none

    @property
    def text(self) -> str:
        """What the user sees: the answer, then where it comes from."""
        if not self.confident or not self.citations:
            return self.body
        return f"{self.body}\n\n出典：{self.citations[0].label()}"


def expected_pattern(question: str) -> re.Pattern[str] | None:
    for cue, pattern in ANSWER_TYPES:
        if cue.search(question):
            return pattern
    return None


#: Labels that announce the asked-for fact (「日時」「締切日」「上限」): a small bonus.
FACT_LABELS = re.compile(r"日時|日程|締切|期限|期間|上限|単価|金額|方法|提出先|問い合わせ先|名称")


def _has_fact(wanted: re.Pattern[str], sentence: str, question_words: list[str]) -> bool:
    """The asked-for kind of fact is in the sentence, beyond the question's own words (事務局 ≠ a place)."""
    for word in sorted(question_words, key=len, reverse=True):
        sentence = sentence.replace(word, " ")
    return bool(wanted.search(sentence))


def _coverage(query_idf: dict[str, float], present: set[str]) -> float:
    total = sum(query_idf.values())
    if total <= 0:
        return 0.0
    return sum(v for t, v in query_idf.items() if t in present) / total


def citation_for(hit: Hit) -> Citation:
    return Citation(source=hit.source.name, title=hit.source.title, section=hit.chunk.section,
                    score=round(hit.score, 5), page=hit.chunk.page)


def _trim(sentence: str, anchor: str | None) -> str:
    if len(sentence) <= MAX_ANSWER_CHARS:
        return sentence
    position = sentence.find(anchor) if anchor else -1
    start = max(0, min(position - 100, len(sentence) - MAX_ANSWER_CHARS)) if position >= 0 else 0
    text = sentence[start:start + MAX_ANSWER_CHARS - 2]
    return ("…" if start else "") + text + "…"


def _with_neighbour(sentences: list[str], index: int, scored: list, hit_no: int) -> str:  # type: ignore[type-arg]
    """The best sentence, plus its better-scoring neighbour when both fit in a short answer."""
    best = sentences[index].lstrip("・-* ")
    own = {s[2]: s[0] for s in scored if s[1] == hit_no}
    neighbours = [i for i in (index - 1, index + 1) if 0 <= i < len(sentences)]
    if not neighbours:
        return best
    other = max(neighbours, key=lambda i: own.get(i, 0.0))
    text = sentences[other].lstrip("・-* ")
    if len(best) + len(text) > NEIGHBOUR_MAX_CHARS or len(text) < 8:
        return best
    return f"{text}{best}" if other < index else f"{best}{text}"


def _score(features: dict[str, float]) -> float:
    z = WEIGHTS["bias"]
    for name, weight in WEIGHTS.items():
        if name == "bias":
            continue
        value = features.get(name, 0.0)
        if name == "dense":
            value -= DENSE_CENTER
        z += weight * value
    return 1.0 / (1.0 + math.exp(-z))


def answer_from(retrieval: Retrieval, threshold: float) -> Answer:
    """Build the answer (or the honest abstention) for one retrieval."""
    question = retrieval.question
    if not retrieval.hits:
        return Answer(question, "", False, 0.0, kind="none",
                      features={"unknown": retrieval.unknown_share})
    faq = _faq_answer(retrieval, threshold)
    if faq is not None:
        return faq

    wanted = expected_pattern(question)
    question_words = [w for w in retrieval.idf if len(w) >= 2]
    question_kanji = {c for c in question if "\u4e00" <= c <= "\u9fff"}
    top_score = retrieval.hits[0].score
    scored: list[tuple[float, int, int, Hit, float, bool]] = []  # score, hit no, sentence no, ...
    sentences_of: list[list[str]] = []
    pool = retrieval.hits[:SENTENCE_POOL]
    if retrieval.steered_source is not None:
        # The question names a document: answer from it, not from a similar passage of another call.
        named = [h for h in pool if h.source.id == retrieval.steered_source]
        pool = named or pool
    for hit_no, hit in enumerate(pool):
        section_tokens = set(tokens(hit.chunk.section))
        prior = 0.3 * hit.score / top_score
        body = hit.chunk.answer if hit.chunk.kind == "faq" and hit.chunk.answer else hit.chunk.text
        sentences = [s for line in body.split("\n") for s in split_sentences(line)]
        sentences_of.append(sentences)
        for sentence_no, sentence in enumerate(sentences):
            present = set(tokens(sentence))
            coverage = _coverage(retrieval.idf, present | section_tokens) * 0.4 + _coverage(retrieval.idf, present) * 0.6
            type_ok = wanted is None or _has_fact(wanted, sentence, question_words)
            # Shared kanji catch what tokens miss (国内 / 内国旅行, 住む / 在住).
            kanji = len(question_kanji & set(sentence)) / len(question_kanji) if question_kanji else 0.0
            score = coverage + prior + 0.1 * kanji
            if wanted is not None:
                score += 0.6 if type_ok else 0.0
                score += 0.15 if type_ok and FACT_LABELS.search(sentence) else 0.0
            scored.append((score, hit_no, sentence_no, hit, coverage, type_ok))
    best_score, hit_no, sentence_no, hit, sentence_coverage, type_ok = max(scored, key=lambda x: x[0])
    sentence = _with_neighbour(sentences_of[hit_no], sentence_no, scored, hit_no)
    chunk_present = set(hit.chunk.tokens) | set(tokens(hit.chunk.section))
    features = {
        "coverage": _coverage(retrieval.idf, chunk_present),
        "sentence": sentence_coverage,
        "type_ok": 1.0 if type_ok else 0.0,
        "unknown": retrieval.unknown_share,
        "dense": max((h.dense for h in retrieval.hits[:3]), default=0.0),
    }
    confidence = _score(features)
    anchor = next((t for t in sorted(retrieval.idf, key=retrieval.idf.get, reverse=True) if t in sentence), None)
    citations = [citation_for(hit)] + [citation_for(h) for h in retrieval.hits if h is not hit][:2]
    return Answer(question, _trim(sentence, anchor), confidence >= threshold,
                  round(confidence, 4), citations, features)


def _faq_answer(retrieval: Retrieval, threshold: float) -> Answer | None:
    """A curated FAQ entry answers when its question says what the user asked."""
    for hit in retrieval.hits[:3]:
        if hit.chunk.kind != "faq" or not hit.chunk.answer:
            continue
        faq_question = hit.chunk.text.split("\nA: ", 1)[0][3:]
        faq_tokens = set(tokens(faq_question))
        forward = _coverage(retrieval.idf, faq_tokens)
        backward = (sum(1 for t in faq_tokens if t in retrieval.idf) / len(faq_tokens)) if faq_tokens else 0.0
        features = {"faq_forward": forward, "faq_backward": backward, "dense": hit.dense,
                    "unknown": retrieval.unknown_share}
        confidence = round(min(1.0, 0.55 * forward + 0.25 * backward + 0.2 * max(0.0, (hit.dense - 0.75) / 0.2)), 4)
        if forward >= 0.7 and backward >= 0.4 and retrieval.unknown_share < 0.25:
            return Answer(retrieval.question, hit.chunk.answer.strip(), confidence >= threshold, confidence,
                          [citation_for(hit)], features, kind="faq")
    return None
