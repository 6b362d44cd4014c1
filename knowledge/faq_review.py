"""Staff answers become FAQ entries: candidates are reviewed, then published into the knowledge base.

Published entries are appended to a normal FAQ source (question/answer) that
the ingest indexes incrementally; the next user asking the same thing gets the
curated answer, cited as 「事務局回答FAQ」, without a person. An entry belongs to
a program (its ticket's, or the one chosen in the console) and goes to that
program's file, `<data dir>/faq/<program>/published.yaml`, which answers only
in that program (`bot.programs.ProgramCatalog.program_of_source`); an entry an
admin marks shared goes to `<data dir>/faq/published.yaml`, which answers in
every program.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select

from bot.services import Services
from bot.storage import audit
from bot.storage.models import FaqCandidate, utcnow
from bot.programs import catalog_for

TITLE = "事務局回答FAQ"


def published_file(services: Services, program: str | None = None) -> Path:
    """The shared file, or with `program` that program's own."""
    folder = services.settings.data_dir / "faq"
    return (folder / program if program else folder) / "published.yaml"


def pending(services: Services) -> list[FaqCandidate]:
    with services.db.session() as session:
        rows = list(session.execute(select(FaqCandidate).where(FaqCandidate.status == "pending")
                                    .order_by(FaqCandidate.id)).scalars())
        for row in rows:
            session.expunge(row)
        return rows


def publish(services: Services, candidate_id: int, reviewer: str, *, question: str | None = None,
            answer: str | None = None, program: str | None = None, shared: bool | None = None) -> FaqCandidate:
    """Write the (possibly edited) entry to its program's published FAQ file (or the shared one) and index it.
    `program` and `shared` change what the candidate says (who may choose them is the caller's check)."""
    from knowledge.ingest import ingest_paths  # heavy: loads chromadb and the embedder

    catalog = catalog_for(services)
    with services.db.session() as session:
        candidate = session.get(FaqCandidate, candidate_id)
        if candidate is None or candidate.status != "pending":
            raise ValueError("その候補は公開できる状態ではありません")
        if program is not None and catalog.get(program) is None:
            raise ValueError(f"事業 {program} はありません")
        candidate.question = (question or candidate.question).strip()
        candidate.answer = (answer or candidate.answer).strip()
        candidate.program = program or candidate.program
        candidate.shared = candidate.shared if shared is None else shared
        path = published_file(services, None if candidate.shared else catalog.owner_id(candidate.program))
        path.parent.mkdir(parents=True, exist_ok=True)
        document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
        document = document or {"title": TITLE, "faq": []}
        document["faq"].append({"question": candidate.question, "answer": candidate.answer,
                                "section": "事務局回答", "tags": ["事務局回答"]})
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
        tmp.replace(path)
        candidate.status = "published"
        candidate.reviewed_by = reviewer
        candidate.reviewed_at = utcnow()
        audit.record(session, "faq.published", subject_type="faq_candidate", subject_id=candidate.id,
                     data={"by": reviewer, "program": None if candidate.shared else catalog.owner_id(candidate.program),
                           "shared": candidate.shared})
        session.flush()
        session.expunge(candidate)
    ingest_paths(services, [path.parent])
    return candidate


def reject(services: Services, candidate_id: int, reviewer: str) -> None:
    with services.db.session() as session:
        candidate = session.get(FaqCandidate, candidate_id)
        if candidate is None or candidate.status != "pending":
            raise ValueError("その候補は却下できる状態ではありません")
        candidate.status = "rejected"
        candidate.reviewed_by = reviewer
        candidate.reviewed_at = utcnow()
        audit.record(session, "faq.rejected", subject_type="faq_candidate", subject_id=candidate.id,
                     data={"by": reviewer})
