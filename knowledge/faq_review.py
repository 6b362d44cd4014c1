"""Staff answers become FAQ entries: candidates are reviewed, then published into the knowledge base.

Published entries are appended to `<data dir>/faq/published.yaml`, a normal
FAQ source (question/answer) that the ingest indexes incrementally; the
next user asking the same thing gets the curated answer, cited as
「事務局回答FAQ」, without a person.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select

from bot.services import Services
from bot.storage import audit
from bot.storage.models import FaqCandidate, utcnow

TITLE = "事務局回答FAQ"


def published_file(services: Services) -> Path:
    return services.settings.data_dir / "faq" / "published.yaml"


def pending(services: Services) -> list[FaqCandidate]:
    with services.db.session() as session:
        rows = list(session.execute(select(FaqCandidate).where(FaqCandidate.status == "pending")
                                    .order_by(FaqCandidate.id)).scalars())
        for row in rows:
            session.expunge(row)
        return rows


def publish(services: Services, candidate_id: int, reviewer: str, *, question: str | None = None,
            answer: str | None = None) -> FaqCandidate:
    """Write the (possibly edited) entry to the published FAQ file and index it."""
    from knowledge.ingest import ingest_paths

    with services.db.session() as session:
        candidate = session.get(FaqCandidate, candidate_id)
        if candidate is None or candidate.status != "pending":
            raise ValueError("その候補は公開できる状態ではありません")
        candidate.question = (question or candidate.question).strip()
        candidate.answer = (answer or candidate.answer).strip()
        path = published_file(services)
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
                     data={"by": reviewer})
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
