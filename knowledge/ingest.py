"""`madoguchi knowledge ingest`: files -> chunks -> database rows + Chroma vectors.

Incremental by content hash: an unchanged file is skipped, a changed one is
re-chunked and re-indexed, a file gone from an ingested folder is removed.
Each file is its own transaction, and a broken file is reported and skipped,
so one bad upload never stops the run or leaves the index half-written.
Vectors are cached by (model, text hash) in the database, so re-ingest and
`--reset` only embed text never seen before.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.services import Services
from bot.storage.models import KnowledgeChunk, KnowledgeSource, utcnow
from knowledge import chunking, loaders
from knowledge.chunking import ChunkDraft, chunk_lines, guess_title, logical_lines
from knowledge.embeddings import build_embeddings
from knowledge.loaders import SUPPORTED_SUFFIXES, LoadedDocument, LoaderError, load
from knowledge.tokenize import tokens
from knowledge.faq_match import question_vectors
from knowledge.unit_vectors import UNIT_EMBED_CHARS, UnitVectors, cached_vectors
from knowledge.vectorstore import VectorStore
from knowledge.edition import MetadataError, check_metadata, is_metadata, metadata_for, program_name, read_edition
from knowledge.retrieval import EDITION_PASSAGES
from knowledge.units import Unit, header_before, units_of

log = logging.getLogger(__name__)

#: Characters of a chunk the dense vector is computed from (its nearest heading first). The embedder's cost
#: is per token, and a cold ingest is nearly all embedder: 60 (was 110) with the units' 80 is what brings one of
#: ../shared/corpus within 60 s on two cores (docs/BENCHMARKS.md "Latency and ingest"); BM25 sees the whole chunk.
EMBED_CHARS = 60


def _recipe() -> str:
    """What a source's stored rows and vectors were made by besides the file itself: the code that reads and
    cuts a file (a digest of knowledge/loaders.py and knowledge/chunking.py) and the embedded text's cut."""
    digest = hashlib.sha256()
    for module in (chunking, loaders):
        digest.update(Path(str(module.__file__)).read_bytes())
    return f"passages cut by {digest.hexdigest()[:12]}; e5 vectors of the nearest heading + first {EMBED_CHARS} characters"


#: A source ingested under another recipe is ingested again, as a changed file is, or its passages and vectors
#: would not be the ones queries and the learned models expect; the embedding cache keeps that cheap (a text
#: cut as before is not embedded again). The units' vectors are looked up by their cut text: they need no mark.
INDEX_RECIPE = _recipe()


@dataclass
class FileResult:
    path: str
    status: str  # new | updated | unchanged | removed | error
    chunks: int = 0
    message: str = ""
    #: the edition the source is (program, fiscal year, application window), as `knowledge ingest` shows it
    edition: str = ""


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    #: texts embedded by vector kind (VECTOR_KINDS' names; the others came from the cache table); a text two
    #: kinds share is counted under the first
    embedded_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def embedded(self) -> int:
        """Passages embedded."""
        return self.embedded_by_kind.get("passages", 0)

    @property
    def units_embedded(self) -> int:
        """Texts of the other kinds embedded (answer units, FAQ questions, ...: the learned pipeline's)."""
        return sum(self.embedded_by_kind.values()) - self.embedded

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def chunks(self) -> int:
        return sum(r.chunks for r in self.results if r.status in ("new", "updated"))


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(files to ingest, folders scanned). Hidden files, unsupported types and metadata files (`*.meta.yaml`,
    knowledge/edition.py: an edition's program, fiscal year and window, never a document) are left out."""
    files: list[Path] = []
    roots: list[Path] = []
    for path in paths:
        path = path.resolve()
        if path.is_dir():
            roots.append(path)
            files.extend(p for p in sorted(path.rglob("*"))
                         if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not is_metadata(p)
                         and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            if not is_metadata(path):
                files.append(path)
        else:
            raise FileNotFoundError(str(path))
    return files, roots


@dataclass(frozen=True)
class Passage:
    """A passage as the vector kinds read it: a new file's draft or a stored chunk."""

    kind: str  # text | faq
    section: str
    text: str
    answer: str | None


@dataclass(frozen=True)
class VectorKind:
    """Texts whose e5 vectors a pipeline reads, computed at ingest for every new or changed source (and for an
    unchanged one if any is missing: it was ingested while another pipeline was chosen) and kept in the
    embedding cache table by content hash, so they are embedded once, in one pass with every other kind.
    `texts(title, passages)` gives one source's texts. `stored`: one vector per passage, kept with the passage
    in the vector store too. The others are read through `UnitVectors`, which keys a text by its first
    UNIT_EMBED_CHARS characters, so they are cut there. `queries`: embedded as e5 queries ("query: ")."""

    name: str
    pipelines: frozenset[str]
    texts: Callable[[str, list[Passage]], list[str]]
    stored: bool = False
    queries: bool = False


def passage_texts(title: str, passages: list[Passage]) -> list[str]:
    """What a passage's dense vector is computed from: a FAQ entry's question, else its nearest heading and the
    first EMBED_CHARS characters."""
    return [_embed_text(title, p) for p in passages]


def unit_texts(title: str, passages: list[Passage]) -> list[str]:
    """The answer units' texts (knowledge/units.py), as the learned ranker compares them with the question."""
    return [unit.text for units in _units(passages) for unit in units]


def faq_question_texts(title: str, passages: list[Passage]) -> list[str]:
    """The FAQ entries' questions, embedded as queries for question-to-question matching (knowledge/faq_match.py)."""
    return [units[0].question or "" for units, p in zip(_units(passages), passages, strict=True) if p.kind == "faq"]


#: Every kind of vector ingest computes, and for which pipelines (settings.knowledge.pipeline). A new kind is one
#: line here (its name, pipelines and texts function); `knowledge ingest` embeds it with the others.
VECTOR_KINDS: tuple[VectorKind, ...] = (
    VectorKind("passages", frozenset({"classic", "learned"}), passage_texts, stored=True),
    VectorKind("units", frozenset({"learned"}), unit_texts),
    VectorKind("faq_questions", frozenset({"learned"}), faq_question_texts, queries=True),
)


def ingest_paths(
    services: Services,
    paths: Iterable[Path],
    *,
    reset: bool = False,
    on_file: Callable[[FileResult], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_embed: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Ingest files and folders. Every new or changed file is read and cut first; then every text of the
    configured pipeline's vector kinds never embedded is embedded in one pass, each distinct text once
    (`on_embed(done, total)` as it goes). While the embedder's workers run, this thread tokenizes the passages
    for BM25 and stores each file, in its own transaction, as soon as its passages' vectors are ready."""
    started = time.perf_counter()
    files, roots = discover(paths)
    # The vector store is opened when something is written to it: a re-ingest of unchanged files opens (and
    # imports) no Chroma, which is most of what it would otherwise cost.
    store = functools.cache(lambda: VectorStore(services.settings))
    embeddings = build_embeddings(services.settings)
    report = IngestReport()
    if on_start:
        on_start(len(files))

    if reset:
        with services.db.session() as session:
            session.execute(delete(KnowledgeChunk))
            session.execute(delete(KnowledgeSource))
        store().reset()

    seen = {str(f) for f in files}
    with services.db.session() as session:
        known = {s.path: (s.id, s.content_hash) for s in session.execute(select(KnowledgeSource)).scalars()}
    for path_str in known:
        if path_str not in seen and any(Path(path_str).is_relative_to(r) for r in roots):
            with services.db.session() as session:
                _remove_source(session, store(), known[path_str][0])
            result = FileResult(path_str, "removed")
            report.results.append(result)
            if on_file:
                on_file(result)

    results: list[FileResult | _Prepared] = []
    for path in files:
        outcome = _prepare(path, known.get(str(path)))
        results.append(outcome)
        if on_file and isinstance(outcome, FileResult) and outcome.status == "error":
            on_file(outcome)
    prepared = [outcome for outcome in results if isinstance(outcome, _Prepared)]

    # Each kind's texts, per embedder (passages, or queries): the stored kind first, file by file, so files can
    # be stored while the rest is embedded; then the others, longest first, so the workers finish together.
    kinds = [kind for kind in VECTOR_KINDS if services.settings.knowledge.pipeline in kind.pipelines]
    first_kind: dict[tuple[bool, str], str] = {}
    ordered: dict[bool, tuple[list[str], list[str]]] = {False: ([], []), True: ([], [])}
    for outcome in results:
        if isinstance(outcome, _Prepared):
            title, passages = outcome.title, outcome.passages
        elif outcome.status == "unchanged":
            title, passages = _stored_passages(services, outcome.path)
        else:
            continue
        for kind in kinds:
            if kind.stored and not isinstance(outcome, _Prepared):
                continue  # an unchanged source's passages are in the vector store
            texts = kind.texts(title, passages)
            if kind.stored:
                outcome.embed_texts = texts  # type: ignore[union-attr]
            else:
                texts = [text[:UNIT_EMBED_CHARS] for text in texts]
            ordered[kind.queries][0 if kind.stored else 1].extend(texts)
            for text in texts:
                first_kind.setdefault((kind.queries, text), kind.name)

    vectors: dict[str, np.ndarray] = {}
    waiting = list(prepared)

    def tokenize() -> None:  # Sudachi, for BM25, while the workers embed
        for file in prepared:
            file.rows = _chunk_rows(file.path, file.drafts)

    def store_ready(new: dict[str, np.ndarray]) -> None:
        """Store the files whose passages all have their vectors, in file order (so sources are numbered as
        before, whichever worker finished first)."""
        vectors.update(new)
        while waiting and all(t in vectors for t in waiting[0].embed_texts):
            file = waiting.pop(0)
            done = _store_file(services, store(), file, [vectors[t] for t in file.embed_texts])
            results[next(i for i, r in enumerate(results) if r is file)] = done
            done.edition = _edition(services, done.path)
            if on_file:
                on_file(done)

    progress = _Progress(on_embed)
    counts: Counter[str] = Counter()
    for queries in (False, True):
        stored, others = ordered[queries]
        if not (stored or others):
            continue
        embedder = question_vectors(UnitVectors(services.db, embeddings)).embeddings if queries else embeddings
        _, embedded = cached_vectors(
            services.db, embedder, stored + sorted(dict.fromkeys(others), key=len, reverse=True), progress.of(),
            meanwhile=None if queries else tokenize, on_ready=None if queries else store_ready)
        for text in embedded:
            counts[first_kind[(queries, text)]] += 1
    report.embedded_by_kind = {kind.name: counts[kind.name] for kind in kinds if counts[kind.name]}

    for outcome in results:
        if isinstance(outcome, FileResult) and outcome.status == "unchanged":
            outcome.edition = _edition(services, outcome.path)
            if on_file:
                on_file(outcome)
        if isinstance(outcome, FileResult):
            report.results.append(outcome)
    report.results += metadata_problems(files, roots)
    report.seconds = time.perf_counter() - started
    services.knowledge_changed()
    return report


class _Progress:
    """One progress report over the embedders' runs: the totals add up as each run starts."""

    def __init__(self, on_embed: Callable[[int, int], None] | None) -> None:
        self.on_embed = on_embed
        self.done = self.total = 0
        self.last: tuple[int, int] | None = None

    def of(self) -> Callable[[int, int], None]:
        base_done, base_total = self.done, self.total

        def report(done: int, total: int) -> None:
            self.done, self.total = base_done + done, base_total + total
            if self.on_embed and (self.done, self.total) != self.last:
                self.last = (self.done, self.total)
                self.on_embed(self.done, self.total)
        return report


@dataclass
class _Prepared:
    """A new or changed file, read and cut into passages, waiting for its vectors."""

    path: Path
    known: tuple[int, str] | None
    content_hash: str
    kind: str
    title: str
    drafts: list[ChunkDraft]
    passages: list[Passage]
    embed_texts: list[str] = field(default_factory=list)
    rows: list[KnowledgeChunk] = field(default_factory=list)


def source_hash(data: bytes) -> str:
    """A source's content hash: its bytes under this INDEX_RECIPE."""
    return hashlib.sha256(INDEX_RECIPE.encode() + b"\n" + data).hexdigest()


def _prepare(path: Path, known: tuple[int, str] | None) -> FileResult | _Prepared:
    """The file read and cut into passages, or why it needs nothing (unchanged) or cannot be read (error)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileResult(str(path), "error", message=str(exc))
    content_hash = source_hash(data)
    if known and known[1] == content_hash:
        return FileResult(str(path), "unchanged")
    try:
        document = load(path)
        title, drafts = _drafts(document, path)
        if not drafts:
            raise LoaderError("no text found")
    except LoaderError as exc:
        log.warning("skipped broken file", extra={"path": str(path), "error": str(exc)})
        return FileResult(str(path), "error", message=str(exc))
    passages = [Passage("faq" if d.question is not None else "text", d.section, d.text, d.answer) for d in drafts]
    return _Prepared(path, known, content_hash, document.kind, title, drafts, passages)


def _store_file(services: Services, store: VectorStore, file: _Prepared, vectors: list[np.ndarray]) -> FileResult:
    """One file's passages and vectors, replacing its earlier version, in one transaction."""
    with services.db.session() as session:
        if file.known:
            _remove_source(session, store, file.known[0])
        source = KnowledgeSource(path=str(file.path), name=file.path.name, title=file.title, kind=file.kind,
                                 content_hash=file.content_hash, chunk_count=len(file.rows), ingested_at=utcnow())
        session.add(source)
        session.flush()
        for row in file.rows:
            row.source_id = source.id
        session.add_all(file.rows)
        session.flush()
        store.add([r.id for r in file.rows], [v.tolist() for v in vectors], [source.id] * len(file.rows))
    return FileResult(str(file.path), "updated" if file.known else "new", chunks=len(file.rows))


def _drafts(document: LoadedDocument, path: Path) -> tuple[str, list[ChunkDraft]]:
    if document.kind == "faq":
        title = document.title or path.stem
        drafts = [ChunkDraft(section=e.section or "よくある質問", page=None, text=f"Q: {e.question}\nA: {e.answer}",
                             question=e.question, answer=e.answer) for e in document.faq]
        return title, drafts
    lines = logical_lines(document.pages)
    title = document.title or guess_title(lines, path.stem)
    return title, chunk_lines(lines, title)


def _chunk_rows(path: Path, drafts: list[ChunkDraft]) -> list[KnowledgeChunk]:
    rows = []
    for ordinal, draft in enumerate(drafts):
        chunk_id = hashlib.sha256(f"{path}\n{ordinal}\n{draft.text}".encode()).hexdigest()[:40]
        is_faq = draft.question is not None
        # FAQ: the question counts twice, so a user's wording of it outweighs words in the answer.
        token_text = (f"{draft.question} {draft.question} {draft.answer}" if is_faq
                      else f"{draft.section} {draft.text}")
        rows.append(KnowledgeChunk(id=chunk_id, ordinal=ordinal, kind="faq" if is_faq else "text",
                                   section=draft.section, page=draft.page, text=draft.text, answer=draft.answer,
                                   tokens=" ".join(tokens(token_text))))
    return rows


def _embed_text(title: str, passage: Passage) -> str:
    if passage.kind == "faq":
        return _faq_question(passage)[:EMBED_CHARS]  # a FAQ is found by its question
    # The nearest heading says what the passage is about; the full path would eat the character budget.
    nearest = passage.section.rsplit(" > ", 1)[-1][:40] if passage.section else ""
    head = f"{nearest}\n" if nearest else ""
    return (head + passage.text)[:EMBED_CHARS]


def _faq_question(passage: Passage) -> str:
    return passage.text.split("\nA: ", 1)[0].removeprefix("Q: ")


def _stored_passages(services: Services, path: str) -> tuple[str, list[Passage]]:
    """A stored source's title and passages, in order."""
    with services.db.session() as session:
        source = session.execute(select(KnowledgeSource).where(KnowledgeSource.path == path)).scalar_one_or_none()
        if source is None:
            return "", []
        chunks = session.execute(select(KnowledgeChunk).where(KnowledgeChunk.source_id == source.id)
                                 .order_by(KnowledgeChunk.ordinal)).scalars().all()
        return source.title, [Passage(c.kind, c.section, c.text, c.answer) for c in chunks]


def _units(passages: list[Passage]) -> list[tuple[Unit, ...]]:
    """Each passage's answer units (knowledge/units.py), with the table header in force where it starts."""
    headers = header_before([p.text for p in passages])
    return [units_of(p.kind, p.section, p.text, p.answer, tuple(header) if header else None)
            for p, header in zip(passages, headers, strict=True)]


def metadata_problems(files: list[Path], roots: list[Path]) -> list[FileResult]:
    """An error row for each metadata file that is wrong (in the folders scanned, or beside a file given): its
    documents are still ingested, and their editions read from their covers until it is mended."""
    problems = {meta: message for root in roots for meta, message in check_metadata(root)}
    for file in files:
        if not any(file.is_relative_to(root) for root in roots):
            try:
                metadata_for(file)
            except MetadataError as error:
                problems.setdefault(error.path, str(error))
    return [FileResult(str(meta), "error", message=message) for meta, message in problems.items()]


def _edition(services: Services, path: str) -> str:
    """The source's edition read from its stored passages (its cover and summary) and any metadata file."""

    with services.db.session() as session:
        source = session.execute(select(KnowledgeSource).where(KnowledgeSource.path == path)).scalar_one_or_none()
        if source is None:
            return ""
        texts = session.execute(select(KnowledgeChunk.text).where(KnowledgeChunk.source_id == source.id)
                                .order_by(KnowledgeChunk.ordinal).limit(EDITION_PASSAGES)).scalars().all()
        title = source.title
    edition = read_edition(title, program_name(title), "\n".join(texts).split("\n"), path)
    return edition.describe(iso_dates=True) + (f" ← {edition.origin}" if edition.origin != "cover" else "")


def _remove_source(session: Session, store: VectorStore, source_id: int) -> None:
    chunk_ids = list(session.execute(select(KnowledgeChunk.id).where(KnowledgeChunk.source_id == source_id)).scalars())
    store.delete(chunk_ids)
    session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.source_id == source_id))
    session.execute(delete(KnowledgeSource).where(KnowledgeSource.id == source_id))
