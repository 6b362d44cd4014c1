"""`madoguchi knowledge ingest`: files -> chunks -> database rows + Chroma vectors.

Incremental by content hash: an unchanged file is skipped, a changed one is
re-chunked and re-indexed, a file gone from an ingested folder is removed.
Each file is its own transaction, and a broken file is reported and skipped,
so one bad upload never stops the run or leaves the index half-written.
Vectors are cached by (model, text hash) in the database, so re-ingest and
`--reset` only embed text never seen before.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.services import Services
from bot.storage.models import KnowledgeChunk, KnowledgeSource, utcnow
from knowledge.chunking import ChunkDraft, chunk_lines, guess_title, logical_lines
from knowledge.embeddings import build_embeddings
from knowledge.loaders import SUPPORTED_SUFFIXES, LoadedDocument, LoaderError, load
from knowledge.tokenize import tokens
from knowledge.faq_match import faq_questions, question_vectors
from knowledge.unit_vectors import UNIT_EMBED_CHARS, UnitVectors, cached_vectors
from knowledge.vectorstore import VectorStore
from knowledge.edition import program_name, read_edition
from knowledge.retrieval import EDITION_PASSAGES
from knowledge.units import header_before, units_of

#: A metadata file beside a document (`<name>.meta.yaml`: program, fiscal year, window) is no document.
META_SUFFIX = ".meta.yaml"

log = logging.getLogger(__name__)

#: Characters of a chunk the dense vector is computed from (its nearest heading first). The embedder's
#: cost grows faster than linearly with length; BM25 still sees the whole chunk.
EMBED_CHARS = 110


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
    embedded: int = 0
    #: answer units whose vectors were computed (learned pipeline; the others came from the cache table)
    units_embedded: int = 0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def chunks(self) -> int:
        return sum(r.chunks for r in self.results if r.status in ("new", "updated"))


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(files to ingest, folders scanned). Hidden files and unsupported types are ignored."""
    files: list[Path] = []
    roots: list[Path] = []
    for path in paths:
        path = path.resolve()
        if path.is_dir():
            roots.append(path)
            files.extend(p for p in sorted(path.rglob("*"))
                         if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.endswith(META_SUFFIX)
                         and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(str(path))
    return files, roots


def ingest_paths(
    services: Services,
    paths: Iterable[Path],
    *,
    reset: bool = False,
    on_file: Callable[[FileResult], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_embed: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Ingest files and folders. Every new or changed file is read and cut first; then every text never
    embedded (passages, and the answer units when the learned pipeline is chosen) is embedded in one pass,
    each distinct text once (`on_embed(done, total)` after each batch); then each file is stored in its own
    transaction."""
    started = time.perf_counter()
    files, roots = discover(paths)
    store = VectorStore(services.settings)
    embeddings = build_embeddings(services.settings)
    report = IngestReport()
    if on_start:
        on_start(len(files))

    if reset:
        with services.db.session() as session:
            session.execute(delete(KnowledgeChunk))
            session.execute(delete(KnowledgeSource))
        store.reset()

    seen = {str(f) for f in files}
    with services.db.session() as session:
        known = {s.path: (s.id, s.content_hash) for s in session.execute(select(KnowledgeSource)).scalars()}
    for path_str in known:
        if path_str not in seen and any(Path(path_str).is_relative_to(r) for r in roots):
            with services.db.session() as session:
                _remove_source(session, store, known[path_str][0])
            result = FileResult(path_str, "removed")
            report.results.append(result)
            if on_file:
                on_file(result)

    # The learned pipeline compares each answer unit's own vector with the question's: computed here, once
    # per unit text (unchanged sources find theirs in the cache table).
    learned = services.settings.knowledge.pipeline == "learned"
    questions = question_vectors(UnitVectors(services.db, embeddings)) if learned else None
    results: list[FileResult | _Prepared] = []
    unit_texts: list[str] = []
    for path in files:
        outcome = _prepare(path, known.get(str(path)))
        results.append(outcome)
        if isinstance(outcome, _Prepared):
            if learned:
                unit_texts += _units_of_rows([(r.kind, r.section, r.text, r.answer) for r in outcome.rows])
            continue
        if outcome.status == "unchanged" and learned:
            unit_texts += _unit_texts(services, outcome.path)
        if on_file and outcome.status == "error":
            on_file(outcome)

    passage_texts = [text for outcome in results if isinstance(outcome, _Prepared) for text in outcome.embed_texts]
    unit_texts = [text[:UNIT_EMBED_CHARS] for text in unit_texts]
    vectors, embedded = cached_vectors(services.db, embeddings, passage_texts + unit_texts, on_embed)
    report.embedded = len(embedded & set(passage_texts))
    report.units_embedded = len(embedded) - report.embedded

    for number, outcome in enumerate(results):
        if isinstance(outcome, _Prepared):
            results[number] = outcome = _store_file(services, store, outcome, [vectors[t] for t in outcome.embed_texts])
        if outcome.status in ("new", "updated", "unchanged"):
            outcome.edition = _edition(services, outcome.path)
            if questions is not None:  # the FAQ entries' questions as queries (knowledge/faq_match.py)
                questions.vectors(faq_questions(services.db, outcome.path))
        report.results.append(outcome)
        if on_file and outcome.status != "error":
            on_file(outcome)
    report.seconds = time.perf_counter() - started
    services.knowledge_changed()
    return report


@dataclass
class _Prepared:
    """A new or changed file, read and cut into passages, waiting for its vectors."""

    path: Path
    known: tuple[int, str] | None
    content_hash: str
    kind: str
    title: str
    rows: list[KnowledgeChunk]
    embed_texts: list[str]


def _prepare(path: Path, known: tuple[int, str] | None) -> FileResult | _Prepared:
    """The file read and cut into passages, or why it needs nothing (unchanged) or cannot be read (error)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileResult(str(path), "error", message=str(exc))
    content_hash = hashlib.sha256(data).hexdigest()
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
    return _Prepared(path, known, content_hash, document.kind, title, _chunk_rows(path, drafts),
                     [_embed_text(title, d) for d in drafts])


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


def _embed_text(title: str, draft: ChunkDraft) -> str:
    if draft.question is not None:
        return draft.question[:EMBED_CHARS]  # a FAQ is found by its question
    # The nearest heading says what the passage is about; the full path would eat the character budget.
    nearest = draft.section.rsplit(" > ", 1)[-1][:40] if draft.section else ""
    head = f"{nearest}\n" if nearest else ""
    return (head + draft.text)[:EMBED_CHARS]


def _unit_texts(services: Services, path: str) -> list[str]:
    """The answer units of a stored source (knowledge/units.py), as the learned pipeline cuts them."""

    with services.db.session() as session:
        source = session.execute(select(KnowledgeSource).where(KnowledgeSource.path == path)).scalar_one_or_none()
        if source is None:
            return []
        chunks = session.execute(select(KnowledgeChunk).where(KnowledgeChunk.source_id == source.id)
                                 .order_by(KnowledgeChunk.ordinal)).scalars().all()
        rows = [(c.kind, c.section, c.text, c.answer) for c in chunks]
    return _units_of_rows(rows)


def _units_of_rows(rows: list[tuple[str, str, str, str | None]]) -> list[str]:
    """The answer units' texts of one source's passages (kind, section, text, answer), in order."""
    texts: list[str] = []
    for (kind, section, text, answer), header in zip(rows, header_before([r[2] for r in rows]), strict=True):
        texts.extend(unit.text for unit in units_of(kind, section, text, answer, tuple(header) if header else None))
    return texts


def _edition(services: Services, path: str) -> str:
    """The source's edition read from its stored passages (its cover and summary) and any metadata file."""

    with services.db.session() as session:
        source = session.execute(select(KnowledgeSource).where(KnowledgeSource.path == path)).scalar_one_or_none()
        if source is None:
            return ""
        texts = session.execute(select(KnowledgeChunk.text).where(KnowledgeChunk.source_id == source.id)
                                .order_by(KnowledgeChunk.ordinal).limit(EDITION_PASSAGES)).scalars().all()
        title = source.title
    return read_edition(title, program_name(title), "\n".join(texts).split("\n"), path).describe()


def _remove_source(session: Session, store: VectorStore, source_id: int) -> None:
    chunk_ids = list(session.execute(select(KnowledgeChunk.id).where(KnowledgeChunk.source_id == source_id)).scalars())
    store.delete(chunk_ids)
    session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.source_id == source_id))
    session.execute(delete(KnowledgeSource).where(KnowledgeSource.id == source_id))
