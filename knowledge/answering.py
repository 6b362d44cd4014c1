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
from datetime import date
from functools import lru_cache

from bot.i18n import DEFAULT_LOCALE, t
from bot.text import normalize
from knowledge import kinds, replies
from knowledge.chunking import is_heading_line, split_sentences
from knowledge.edition import Edition, program_name, today_in_japan
from knowledge.kinds import Kind
from knowledge.retrieval import Hit, IndexedChunk, Retrieval, part_of, title_key
from knowledge.tokenize import tokens

#: The longest answer shown (a chat bubble stays readable; the evaluation reads 300 characters).
MAX_ANSWER_CHARS = 300
#: A sentence and its neighbour are shown together only when both are short: two long sentences are two points.
NEIGHBOUR_MAX_CHARS = 200
#: Passages whose sentences compete for the answer. Fusion may rank the passage holding the question's rarest
#: word (同席) 11th, under passages dense retrieval likes; 12 measured better than 8, 10 and 16 (which let an
#: out-of-scope question find a confident sentence).
SENTENCE_POOL = 12
#: A question that names no program is ambiguous when another program's best sentence scores within this
#: of the best (ranker units; the closest answerable question of the question sets is 0.9 apart).
AMBIGUITY_MARGIN = 0.8
#: Programs offered when asking which one is meant (three short lines fit one chat reply).
MAX_CHOICES = 3
#: A label stands at a row's head (「締切日：」「(2) 提出方法」): later in a sentence the same word is prose.
LABEL_HEAD_CHARS = 15
#: A short sentence (a table row, a label and its value) states one fact; its weight is fitted (RANKER_WEIGHTS).
SHORT_SENTENCE_CHARS = 60


#: 「Xとは」「Xはどこですか」: asks what or who X is, which the sentence defining X answers
#: (unlike 「Xはどこに住んでいる必要が…」, a property of X).
_WHAT_IS = re.compile(r"とは|って何|(?:どこ|何|誰|なん|どちら)(?:です|でしょう|[?？]|$)")
_ASIDE = re.compile(r"なお[、,]|また[、,]")
_BULLETS = ("・", "-", "*", "•")
#: A sentence that opens a list: 「以下の場合には」「次のいずれかに該当する」「下記の」.
_INTRODUCES_LIST = re.compile(r"(?:以下|次|下記)(?:の|に掲げる|のいずれか)")
#: The numbering after a list item's bullet (「(2)」「②」「ア.」「a.」), whose shape tells one list's items from
#: those of the list around it. Unlike chunking's item number, which only strips a bracket before counting
#: brackets, it leaves 「(a)」 out: lettered items of one list would get a shape each.
_ITEM_NUMBERING = re.compile(r"[(（]?\d{1,2}[)）.．]|[①-⑳]|[ア-ン][.．、)）]|[a-zA-Z][.．)）]")
#: How far above a list item its lead-in may stand (the list's other items in between).
LEAD_IN_REACH = 12
#: 「1社あたり」「1年で」「1つの地域で」「派遣1回につき」: the unit the question counts per; group 1.
_PER_UNIT = re.compile(r"(?:1|一)つ?の?\s*([^\s\d、。のがはをにで]{1,6}?)\s*(?:あたり|当たり|につき|ごと|で(?!す|き))")
#: A row that names a term, then says what it is: 「c. 消耗品費: 本業務の実施に直接必要な物品(…1年未満のもの)…」
#: 「締切日:令和6年6月19日」. The term is group 1; an item mark before it is left out.
_TERM_ROW = re.compile(r"^[・\-*●○■◆\s]*(?:(?:[a-zA-Zア-ン①-⑳]|\d{1,2})[.．)）]\s*|[(（][^)）]{1,3}[)）]\s*)?"
                       r"([^:：、。\s]{2,15})\s*[:：]")
#: Weights of the sentence ranker over the features of `candidates_for`, fitted listwise
#: (softmax over each question's candidate sentences) by `benchmarks/calibrate.py ranker`.
RANKER_WEIGHTS = {"cov_sentence": 1.3, "cov_path": 1.76, "cov_heading": 0.93, "prior": 1.92, "kanji": 1.11,
                  "type_ok": 3.0, "label": 1.35, "short": 0.29, "definition": 0.1, "bare_heading": -0.6,
                  "key_word": 1.34, "long": -0.45, "term_row": 0.5, "per_unit": 1.0}

#: An answer a rule says cannot be right (no date for 「いつ」) keeps its confidence only up to just under the
#: threshold: declined, but still ordered among the unsure ones.
UNSURE_CAP = 0.9
#: A curated FAQ entry answers when its question says most of the user's question (forward: the share of the
#: user's idf it covers) and the user says a fair part of it (backward), and few of the user's words are unknown.
FAQ_MIN_FORWARD = 0.7
FAQ_MIN_BACKWARD = 0.4
FAQ_MAX_UNKNOWN = 0.25
#: Its confidence: forward matters most, then backward, then how alike the two questions are by e5 (cosines
#: from FAQ_DENSE_FLOOR, where two questions on one topic start, over FAQ_DENSE_SPAN to 0.95). Set by hand.
FAQ_WEIGHTS = (0.55, 0.25, 0.2)
FAQ_DENSE_FLOOR = 0.75
FAQ_DENSE_SPAN = 0.2

# Logistic confidence (see module docstring); refit with `benchmarks/calibrate.py confidence`.
WEIGHTS = {"bias": -1.3, "coverage": 1.72, "sentence": 0.26, "type_ok": 0.86, "unknown": -3.83, "dense": 2.05,
           "rank_prob": 1.63}
#: e5 cosines of a question and a related passage sit around 0.8 (unrelated ones below): the dense feature's zero.
DENSE_CENTER = 0.80


@dataclass
class Citation:
    source: str
    title: str
    section: str
    score: float
    page: int | None = None

    @property
    def program(self) -> str:
        return program_name(self.title)

    def label(self) -> str:
        parts = [self.title]
        if self.section:
            parts.append(self.section)
        if self.page:
            parts.append(f"p.{self.page}")
        return " ／ ".join(parts)

    def short_label(self) -> str:
        """Where an excerpt stands, short enough to follow it in a chat bubble: the program's name and the
        heading it stands under (「後継者支援ネットワーク事業 ／ (7)報告書の作成・提出」)."""
        parts = [self.program]
        if self.section:
            parts.append(self.section.rsplit(" > ", 1)[-1])
        if self.page:
            parts.append(f"p.{self.page}")
        return " ／ ".join(parts)


@dataclass
class Excerpt:
    """A short quoted passage of an unsure reply, with where it stands."""

    text: str
    where: str  # program ／ heading (Citation.short_label)


#: What the user is told, whatever the wording: a confident answer, or why not (the chat's replies carry it
#: as `meta["outcome"]`, the web chat's page as `data-outcome`).
OUTCOMES = ("answered", "unsure", "outside", "other_edition", "which_program", "unavailable")


@dataclass
class Answer:
    question: str
    body: str
    confident: bool
    confidence: float
    citations: list[Citation] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    #: extractive | faq | generated | ambiguous (which program?) | none (empty index) | unsure (related
    #: excerpts) | outside (nothing related) | other_edition (another fiscal year or round)
    kind: str = "extractive"
    #: the related excerpts an unsure reply quotes
    excerpts: list[Excerpt] = field(default_factory=list)
    #: the deadline or period end the answer states that had passed on `today` (Japan time)
    passed: date | None = None
    today: date | None = None
    #: the editions a decline of another fiscal year or round names
    editions: list[Edition] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """One of OUTCOMES."""
        if self.confident:
            return "answered"
        if self.kind in ("outside", "none"):
            return "outside"
        if self.kind == "other_edition":
            return "other_edition"
        if self.kind == "ambiguous":
            return "which_program"
        return "unsure"

    def note_in(self, locale: str = DEFAULT_LOCALE) -> str:
        """A note after the answer: the deadline it states has passed."""
        if self.passed is None or self.today is None:
            return ""
        return replies.passed_note(self.passed, self.today, locale)

    @property
    def note(self) -> str:
        return self.note_in()

    def text_in(self, locale: str = DEFAULT_LOCALE) -> str:
        """What the user sees: the answer, a note on it, then where it comes from; when not confident, the
        decline or the related excerpts (the chat adds the offer of a person)."""
        if self.kind == "other_edition":
            return replies.other_edition_text(self.editions, locale)
        if not self.confident and self.excerpts:
            return "\n".join([t("knowledge_related", locale),
                              *replies.excerpt_lines([(e.text, e.where) for e in self.excerpts])])
        if not self.confident or not self.citations:
            return self.body
        note = self.note_in(locale)
        note = f"\n\n{note}" if note else ""
        return f"{self.body}{note}\n\n{t('knowledge_source', locale, label=self.citations[0].label())}"

    @property
    def text(self) -> str:
        return self.text_in()


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


@dataclass
class Candidate:
    """One sentence of a retrieved passage that might answer the question."""

    hit_no: int
    sentence_no: int
    hit: Hit
    features: dict[str, float]
    #: the words of the sentence and of its section path
    present: frozenset[str] = frozenset()
    score: float = 0.0


def _unbulleted(sentence: str) -> str:
    """The sentence without the bullet of its list item, as it is shown."""
    return sentence.lstrip("・-* ")


def _item_kind(sentence: str) -> tuple[str, str] | None:
    """(bullet, shape of its number) of a list item (「- ② 会社等の…」 → ("-", "①"), 「- (2) …」 → ("-",
    "(0)")), None for a sentence that is no item. Items of one list share both, whatever the indent a
    Markdown source had."""
    if not sentence.startswith(_BULLETS):
        return None
    number = _ITEM_NUMBERING.match(sentence[1:].lstrip())
    shape = number.group() if number else ""
    return sentence[0], re.sub(r"[①-⑳]", "①", re.sub(r"\d+", "0", shape))


def _list_around(sentences: list[str], index: int) -> tuple[int, list[int]] | None:
    """The sentence introducing the list whose item is at `index` (「以下の場合には応募は無効となります。」
    above 「・提案書に虚偽が認められた場合」), and the items of that list: an item alone does not say
    what holds for it, and 「いずれか」 needs every item."""
    kind = _item_kind(sentences[index])
    if kind is None:
        return None
    first = index
    while first > 0 and index - first < LEAD_IN_REACH and _item_kind(sentences[first - 1]) == kind:
        first -= 1
    if first == 0 or not _INTRODUCES_LIST.search(sentences[first - 1]):
        return None
    last = index
    while last + 1 < len(sentences) and _item_kind(sentences[last + 1]) == kind:
        last += 1
    return first - 1, list(range(first, last + 1))


def _rule_above(wanted: tuple[Kind, ...], index: int, sentences: list[str], heading: str,
                question_words: list[str]) -> bool:
    """A list item is ruled on by what stands above it: 「・税理士に支払う費用」 under 「次の経費は計上の
    対象外とします。」 or under the heading 「委託経費の対象とならない経費」 answers 「経費にできますか」."""
    yes_no = [kind for kind in wanted if kind.name == "yes_no"]
    if not yes_no or not sentences[index].startswith(_BULLETS):
        return False
    in_list = _list_around(sentences, index)
    above = [heading] + ([sentences[in_list[0]]] if in_list else [])
    return any(kinds.states(yes_no[0], text, question_words) for text in above)


@lru_cache(maxsize=1024)
def asked(question: str) -> tuple[Kind, ...]:
    """The kinds of fact the question asks for (knowledge/kinds.py's general table; several may be)."""
    return kinds.asked_kinds(question)


def states_asked(wanted: tuple[Kind, ...], sentence: str, question_words: list[str]) -> bool:
    """The sentence states a fact of a kind asked for, beyond the question's own words."""
    return any(kinds.states(kind, sentence, question_words) for kind in wanted)


def can_answer(wanted: tuple[Kind, ...], sentence: str, question_words: list[str]) -> bool:
    """The sentence holds what any answer must (kinds.must_state): 「いくら」 an amount, 「いつ」 a time."""
    return not kinds.must_state(wanted) or states_asked(wanted, sentence, question_words)


def _with_neighbour(sentences: list[str], best: Candidate, candidates: list[Candidate]) -> str:
    """The best sentence, plus its better-scoring neighbour when both fit in a short answer; a list
    item comes with the sentence that introduces its list, and the whole list when it is short, as does
    the sentence that introduces one (「以下に掲げるマニュアル類を整備し、」)."""
    index = best.sentence_no
    text_of_best = _unbulleted(sentences[index])
    in_list = _list_around(sentences, index)
    prefix = ""
    for opener in (index, index + 1):  # the sentence, or the next one, opens a list: show the list
        if in_list is None and opener + 1 < len(sentences) and _INTRODUCES_LIST.search(sentences[opener]):
            in_list = _list_around(sentences, opener + 1)
            prefix = text_of_best if in_list is not None and opener > index else ""
    if in_list is not None:
        lead, items = in_list
        intro = prefix + _unbulleted(sentences[lead])

        def fits(shown: list[int]) -> bool:
            return len(intro) + sum(len(sentences[i]) for i in shown) <= MAX_ANSWER_CHARS

        # A long list is cut to the item asked about; a sentence that only opens it is no item to show.
        shown = items if fits(items) else [i for i in items if i == index]
        if shown and fits(shown):
            return intro + "".join(f"\n・{_unbulleted(sentences[i])}" for i in shown)
    own = {c.sentence_no: c.score for c in candidates if c.hit_no == best.hit_no}
    # A following 「なお、…」「また、…」 turns to another point; it does not complete the answer
    # (a 「ただし、…」 does: it limits what was just said). A heading line is no sentence to run into the answer
    # (「2. 応募の受付応募の受付期間は…」).
    neighbours = [i for i in (index - 1, index + 1) if 0 <= i < len(sentences)
                  and not (i > index and _ASIDE.match(_unbulleted(sentences[i])))
                  and not is_heading_line(sentences[i])]
    if not neighbours:
        return text_of_best
    other = max(neighbours, key=lambda i: own.get(i, float("-inf")))
    text = _unbulleted(sentences[other])
    if len(text_of_best) + len(text) > NEIGHBOUR_MAX_CHARS or len(text) < 8:
        return text_of_best
    return f"{text}{text_of_best}" if other < index else f"{text_of_best}{text}"


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


def _pool(retrieval: Retrieval) -> list[Hit]:
    pool = retrieval.hits[:SENTENCE_POOL]
    if retrieval.steered_source is not None:
        # The question names a document: answer from it, not from a similar passage of another call.
        named = [h for h in pool if h.source.id == retrieval.steered_source]
        pool = named or pool
    return pool


@lru_cache(maxsize=8192)
def _placed_sentences(chunk: IndexedChunk) -> tuple[tuple[str, str, frozenset[str], frozenset[str], bool], ...]:
    """(sentence, the heading it stands under, its tokens, the heading's tokens, whether it is itself
    a heading line) for one passage.

    The heading is the nearest heading line above the sentence in the passage, else the passage's
    own section: a passage may hold several short sections (「(1)日時 …」「(2)開催方法 …」). Cached per
    passage (an index snapshot never changes a passage), so a question pays tokenization once.
    """
    body = chunk.answer if chunk.kind == "faq" and chunk.answer else chunk.text
    heading = chunk.section.rsplit(" > ", 1)[-1]
    out = []
    for line in body.split("\n"):
        is_heading = chunk.kind != "faq" and is_heading_line(line)
        for sentence in split_sentences(line):
            out.append((sentence, heading, frozenset(tokens(sentence)), frozenset(_cached_tokens(heading)),
                        is_heading))
        if is_heading:
            heading = line
    return tuple(out)


@lru_cache(maxsize=8192)
def _cached_tokens(text: str) -> tuple[str, ...]:
    """Tokens of a heading or section path: the same few strings come back with every question."""
    return tuple(tokens(text))


@lru_cache(maxsize=256)
def _title_key(title: str) -> str:
    return title_key(title)


def _question_words(retrieval: Retrieval) -> list[str]:
    """The question's own words and their synonyms, which do not count as the fact it asks for
    (事務局 is not an answer to 「事務局はどこ」, nor 終了後 to 「いつ終わりますか」)."""
    words = {w for w in retrieval.idf if len(w) >= 2}
    words |= {s for w in retrieval.idf for s in retrieval.synonyms.get(w, ())}
    return sorted(words)


def candidates_for(retrieval: Retrieval) -> tuple[list[Candidate], list[list[str]]]:
    """Every sentence of the top passages with the features the ranker scores it by.

    The features say why a sentence answers: it repeats the question's words (or the
    document's other name for them), its section heading names the topic (a table row
    「締切日:6月19日」 under 「募集期間」 does not repeat the question), it holds the asked-for
    kind of fact beyond the question's own words, a label announces that fact, or it is
    the sentence that defines the term asked about.
    """
    question = retrieval.question
    wanted = asked(question)
    question_words = _question_words(retrieval)
    # Kanji of the words that only name the document (後継者支援ネットワーク事業) say nothing of the topic.
    name_only = set("".join(retrieval.name_tokens)) - set("".join(t for t in retrieval.idf
                                                                   if t not in retrieval.name_tokens))
    question_kanji = {c for c in question if "\u4e00" <= c <= "\u9fff" and c not in name_only}
    asks_identity = bool(_WHAT_IS.search(question))
    per_unit = [re.compile(r"(?:1|一)\s*(?:つの)?\s*" + re.escape(unit) + r"[^\s、。]{0,2}?(?:当たり|あたり|につき|ごと)")
                for unit in _PER_UNIT.findall(normalize(question))]
    topic_words = [t for t in retrieval.nouns & set(retrieval.idf) if len(t) >= 2
                   and t not in retrieval.name_tokens and t not in retrieval.framing]
    top_score = retrieval.hits[0].score or 1.0
    candidates: list[Candidate] = []
    sentences_of: list[list[str]] = []
    for hit_no, hit in enumerate(_pool(retrieval)):
        path_tokens = set(_cached_tokens(hit.chunk.section))
        placed = _placed_sentences(hit.chunk)
        sentences_of.append([sentence for sentence, *_ in placed])
        title = _title_key(hit.source.title)
        for sentence_no, (sentence, heading, present, heading_tokens, is_heading) in enumerate(placed):
            # The cover line (the document's title, issuer and date of issue) names the document; its date
            # is when the call was published, the answer to none of the questions people ask.
            # A sentence that only names a sibling program (「令和5年度地域デジタル人材育成・確保推進事業(デジタル
            # 人材育成における地域ハブ機能実証事業)の受託事業者」) is no cover line: the cover begins with the title.
            cover = bool(title) and sentence.replace(" ", "").lstrip("・-−●○■◆ ").startswith(title)
            is_heading = is_heading or cover
            type_ok = not cover and bool(wanted) and (
                states_asked(wanted, sentence, question_words)
                or _rule_above(wanted, sentence_no, sentences_of[-1], heading, question_words))
            label = any(kinds.labelled(kind, sentence[:LABEL_HEAD_CHARS]) or kinds.labelled(kind, heading)
                        for kind in wanted)
            defines = asks_identity and any(d.long in sentence and d.short in sentence for d in retrieval.definitions)
            term = _TERM_ROW.match(sentence)
            features = {
                "cov_sentence": retrieval.coverage(present),
                "cov_path": retrieval.coverage(present | path_tokens),
                "cov_heading": retrieval.coverage(heading_tokens),
                "prior": max(0.0, hit.score / top_score),
                # Shared kanji catch what tokens miss (国内 / 内国旅行, 住む / 在住).
                "kanji": len(question_kanji & set(sentence)) / len(question_kanji) if question_kanji else 0.0,
                "type_ok": 1.0 if type_ok else 0.0,
                "label": 1.0 if type_ok and label else 0.0,
                "short": 1.0 if len(sentence) <= SHORT_SENTENCE_CHARS else 0.0,
                # A run-on table cell or list (no 。 for hundreds of characters) covers every word by its
                # length alone, and has to be cut to be shown.
                "long": 1.0 if len(sentence) > MAX_ANSWER_CHARS else 0.0,
                "definition": 1.0 if defines else 0.0,
                # The row of the term asked about (消耗品 in 「消耗品費: …」) says what that term is.
                "term_row": 1.0 if term and any(word in term.group(1) for word in topic_words) else 0.0,
                # 「1つの地域で何社以上」 is answered per region (「1地域当たり最低3以上」), not in total (「合計10以上」).
                "per_unit": 1.0 if any(p.search(sentence) for p in per_unit) else 0.0,
                # A heading names a topic; it answers only when it carries the fact (「(1)日時 4月14日」).
                "bare_heading": 1.0 if is_heading and not type_ok else 0.0,
            }
            candidates.append(Candidate(hit_no, sentence_no, hit, features, frozenset(present | path_tokens)))
    # The question's rarest word the passages say is what it is about (日当 in 「日当がもらえる条件」): a
    # sentence that says neither it nor its heading does is likely about something else (留保条件).
    # A word that only frames the question (出る in 「旅費は出ますか」) is no topic, however rare.
    # A noun, where the question has one: 消耗品 in 「消耗品とみなされる物品」, not the rarer verb 見なす.
    said = [t for t in retrieval.idf if t not in retrieval.name_tokens and t not in retrieval.framing
            and any(_says(retrieval, t, c.present) for c in candidates)]
    said = [t for t in said if t in retrieval.nouns] or said
    key = max(said, key=lambda t: retrieval.idf[t]) if said else None
    for candidate in candidates:
        candidate.features["key_word"] = 1.0 if key is not None and _says(retrieval, key, candidate.present) else 0.0
        candidate.score = sum(RANKER_WEIGHTS[n] * v for n, v in candidate.features.items())
    return candidates, sentences_of


def _says(retrieval: Retrieval, word: str, present: frozenset[str]) -> bool:
    """The sentence says the word, in any form the retrieval knows, or within a compound of its own
    (消耗品 in 消耗品費)."""
    return retrieval.covered(word, present) or any(part_of(word, t) for t in present)


def other_edition(retrieval: Retrieval) -> Answer | None:
    """The decline of a question about a fiscal year or round the sources are not, naming the editions held
    (None when the question is about the editions held)."""
    if not replies.asks_another_edition(retrieval):
        return None
    editions = replies.held_editions(retrieval)
    return Answer(retrieval.question, replies.other_edition_text(editions), False, 0.0, kind="other_edition",
                  editions=editions)


def not_sure(retrieval: Retrieval, picks: list[tuple[str, Hit]], confidence: float, features: dict[str, float],
             is_related: bool) -> Answer:
    """The reply when not confident: the one or two related passages `picks` (text and where it stands) as
    short excerpts, or, when nothing is related, the question is outside this window (no documents)."""
    question = retrieval.question
    if not is_related or not picks:
        return Answer(question, "", False, confidence, [], features, kind="outside")
    anchors = replies.anchors_of(retrieval)
    quoted = [Excerpt(replies.short_excerpt(text, anchors), citation_for(hit).short_label()) for text, hit in picks]
    citations = list({c.label(): c for c in (citation_for(hit) for _, hit in picks)}.values())
    body = "\n".join([t("knowledge_related"), *replies.excerpt_lines([(e.text, e.where) for e in quoted])])
    return Answer(question, body, False, confidence, citations, features, kind="unsure", excerpts=quoted)


def confident(retrieval: Retrieval, text: str, hit: Hit, confidence: float, features: dict[str, float],
              kind: str = "extractive", today: date | None = None) -> Answer:
    """A confident answer, cited to the passage it was taken from alone, noting a deadline it states that has
    passed (today in Japan, or `today`)."""
    today = today or today_in_japan()
    return Answer(retrieval.question, text, True, confidence, [citation_for(hit)], features, kind=kind,
                  passed=replies.deadline_passed(retrieval, hit, text, today), today=today)


def answer_from(retrieval: Retrieval, threshold: float, *, today: date | None = None) -> Answer:
    """Build the answer (or the honest abstention) for one retrieval; `today` defaults to today in Japan."""
    question = retrieval.question
    if not retrieval.hits:
        return Answer(question, "", False, 0.0, kind="none",
                      features={"unknown": retrieval.unknown_share})
    declined = other_edition(retrieval)
    if declined is not None:
        return declined
    faq = _faq_match(retrieval)
    if faq is not None:
        faq_hit, faq_confidence, faq_features = faq
        answer = (faq_hit.chunk.answer or "").strip()
        if faq_confidence >= threshold:
            return confident(retrieval, answer, faq_hit, faq_confidence, faq_features, "faq", today)
        return not_sure(retrieval, [(answer, faq_hit)], faq_confidence, faq_features, True)
    candidates, sentences_of = candidates_for(retrieval)
    if not candidates:
        return Answer(question, "", False, 0.0, kind="none", features={"unknown": retrieval.unknown_share})
    question_words = _question_words(retrieval)
    able = _able(candidates, sentences_of, retrieval, question_words)
    best = max(able, key=lambda c: c.score)
    hit = best.hit
    # How sure the ranker is of its pick: softmax weight of the best sentence among distinct sentences.
    distinct: dict[str, float] = {}
    for c in candidates:
        text = sentences_of[c.hit_no][c.sentence_no]
        distinct[text] = max(distinct.get(text, float("-inf")), c.score)
    exps = [math.exp(v - best.score) for v in distinct.values()]
    rank_prob = 1.0 / sum(exps)
    sentence = _with_neighbour(sentences_of[best.hit_no], best, candidates)
    chunk_present = set(hit.chunk.tokens) | set(_cached_tokens(hit.chunk.section))
    features = {
        "coverage": retrieval.coverage(chunk_present),
        "sentence": best.features["cov_sentence"],
        "type_ok": 1.0 if best.features["type_ok"] or not asked(question) else 0.0,
        "unknown": retrieval.unknown_share,
        "dense": max((h.dense for h in retrieval.hits[:3]), default=0.0),
        "rank_prob": rank_prob,
    }
    confidence = _score(features)
    wanted = asked(question)
    rivals = _rival_documents(best, able, retrieval, sentences_of)
    if rivals and confidence >= threshold:
        # The question names no program and two programs say the asked-for fact about the same thing
        # (「締切はいつですか」): ask which one rather than pick one.
        choices = [best, *rivals]
        citations = [citation_for(c.hit) for c in choices]
        said = [sentences_of[c.hit_no][c.sentence_no] for c in choices]
        # Inside one program's window the same answers are the related excerpts of a not-sure reply.
        anchors = replies.anchors_of(retrieval)
        quoted = [Excerpt(replies.short_excerpt(text, anchors), citation.short_label())
                  for text, citation in zip(said, citations, strict=True)]
        return Answer(question, "\n".join(f"{citation.program}：{_trim(text, None)}"
                                          for citation, text in zip(citations, said, strict=True)),
                      False, round(confidence, 4), citations, features, kind="ambiguous", excerpts=quoted)
    topic_less = retrieval.steered_source is None and all(t in retrieval.framing for t in retrieval.idf)
    if wanted and topic_less and not any(_says(retrieval, t, best.present) for t in retrieval.framing):
        # 「締切はいつですか」 names no program and says only what kind of fact it wants: any date would do,
        # unless the sentence or its heading says the word asked (「締切日:6月19日」). 「翌月末までに報告」 is no 締切.
        # (「推進体制構築支援の事務局はどこ」 names its program: 事務局 is then what it asks about.)
        confidence = min(confidence, threshold * UNSURE_CAP)
    if not can_answer(wanted, sentence, question_words):
        # 「いつ終わりますか」 answered by a sentence with no date is wrong however well it matches.
        confidence = min(confidence, threshold * UNSURE_CAP)
    if confidence >= threshold:
        anchor = next((t for t in replies.anchors_of(retrieval) if t in sentence), None)
        return confident(retrieval, _trim(sentence, anchor), hit, round(confidence, 4), features, today=today)
    # Not sure: the best sentences of one or two passages, when the documents relate to the question at all.
    picks = replies.excerpt_picks([(sentences_of[c.hit_no][c.sentence_no], c.hit)
                                   for c in sorted(candidates, key=lambda c: c.score, reverse=True)])
    is_related = replies.related(retrieval, max(c.features["cov_path"] for c in candidates))
    return not_sure(retrieval, picks, round(confidence, 4), features, is_related)


def _rival_documents(best: Candidate, able: list[Candidate], retrieval: Retrieval,
                     sentences_of: list[list[str]]) -> list[Candidate]:
    """For a question that names no document, the best sentence of each other document that answers it
    about as well as `best` (as sure of the kind of fact, saying the key word as much) but with another
    fact (a guide and an FAQ of one program that both say 5,280円 agree), best first."""
    names = [kind.name for kind in asked(retrieval.question)]
    if retrieval.steered_source is not None or not names or not best.features["type_ok"]:
        return []

    def facts(candidate: Candidate) -> set[str]:
        return kinds.fact_strings(sentences_of[candidate.hit_no][candidate.sentence_no], names)

    best_facts = facts(best)
    per_document: dict[int, Candidate] = {}
    for candidate in able:
        source = candidate.hit.source.id
        if (source == best.hit.source.id or not candidate.features["type_ok"]
                or candidate.features["key_word"] < best.features["key_word"]
                or best.score - candidate.score >= AMBIGUITY_MARGIN):
            continue
        own_facts = facts(candidate)
        if own_facts <= best_facts or best_facts <= own_facts:  # the same fact, or one within the other
            continue
        if source not in per_document or candidate.score > per_document[source].score:
            per_document[source] = candidate
    return sorted(per_document.values(), key=lambda c: c.score, reverse=True)[:MAX_CHOICES - 1]


def _able(candidates: list[Candidate], sentences_of: list[list[str]], retrieval: Retrieval,
          question_words: list[str]) -> list[Candidate]:
    """The candidates that hold what any answer must (a time for 「いつ」, an amount for 「いくら」), when
    there are any: a sentence without it cannot be the answer however well it matches the words."""
    wanted = asked(retrieval.question)
    if not kinds.must_state(wanted):
        return candidates
    able = [c for c in candidates if can_answer(wanted, sentences_of[c.hit_no][c.sentence_no], question_words)]
    return able or candidates


def _faq_match(retrieval: Retrieval) -> tuple[Hit, float, dict[str, float]] | None:
    """A curated FAQ entry whose question says what the user asked: its passage, confidence and features."""
    for hit in retrieval.hits[:3]:
        if hit.chunk.kind != "faq" or not hit.chunk.answer:
            continue
        faq_question = hit.chunk.text.split("\nA: ", 1)[0][3:]
        faq_tokens = set(tokens(faq_question))
        if set(asked(retrieval.question)) & set(asked(faq_question)):
            # Both ask for the same kind of answer (「申込方法は？」, 「申し込むにはどうすればよいですか」).
            faq_tokens |= retrieval.framing
        forward = retrieval.coverage(faq_tokens, literal=True)
        backward = (sum(1 for t in faq_tokens if t in retrieval.idf) / len(faq_tokens)) if faq_tokens else 0.0
        features = {"faq_forward": forward, "faq_backward": backward, "dense": hit.dense,
                    "unknown": retrieval.unknown_share}
        dense = max(0.0, (hit.dense - FAQ_DENSE_FLOOR) / FAQ_DENSE_SPAN)
        confidence = round(min(1.0, sum(w * v for w, v in zip(FAQ_WEIGHTS, (forward, backward, dense), strict=True))), 4)
        if forward >= FAQ_MIN_FORWARD and backward >= FAQ_MIN_BACKWARD and retrieval.unknown_share < FAQ_MAX_UNKNOWN:
            return hit, confidence, features
    return None
