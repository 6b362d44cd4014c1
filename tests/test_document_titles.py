"""A document's title is its meta title or first heading, never run into the body text after it (issue 22: the
regional-dx sample's title ran into its first paragraph in the chat's list of related sources)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from bot.storage.models import KnowledgeSource
from knowledge.chunking import guess_title, logical_lines
from knowledge.loaders import load
from tests.conftest import sample_kb_copy

BODY = "この案内は、公募の要点を短くまとめたものです。正式な条件は公募要領の本文に従ってください。"


def title_of(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    document = load(path)
    return document.title or guess_title(logical_lines(document.pages), path.stem)


def test_a_title_never_runs_into_the_body(tmp_path: Path) -> None:
    # a Markdown heading is the whole title, even when the first paragraph says 公募要領
    assert title_of(tmp_path, "a.md", f"# 地域DX伴走支援事業 公募のご案内\n\n{BODY}\n\n## 1. 趣旨\n") == \
        "地域DX伴走支援事業 公募のご案内"
    # a plain first line: the same
    assert title_of(tmp_path, "b.txt", f"伴走支援事業 公募のご案内\n{BODY}\n") == "伴走支援事業 公募のご案内"
    # a title set on several short cover lines is still read on until 「…募集要領」 closes it
    assert title_of(tmp_path, "c.txt", "令和6年度「後継者支援ネットワーク事業」に係る\n企画競争募集要領\n\n"
                                       "令和6年5月29日\n" + BODY + "\n") == "令和6年度「後継者支援ネットワーク事業」に係る企画競争募集要領"
    # the meta title of an HTML page wins
    assert title_of(tmp_path, "d.html", f"<html><head><title>説明会のご案内</title></head><body><p>{BODY}</p></body>"
                                        "</html>") == "説明会のご案内"


@pytest.fixture
def classic_sample_kb(sample_kb_template: Path, tmp_path: Path) -> Iterator[Services]:
    """The sample knowledge base answered by the classic answerer."""
    services = sample_kb_copy(sample_kb_template, tmp_path, "classic")
    yield services
    services.close()


def test_the_regional_dx_sample_is_listed_by_its_title_alone(classic_sample_kb: Services) -> None:
    sample_kb_services = classic_sample_kb
    with sample_kb_services.db.session() as session:
        title = session.execute(select(KnowledgeSource.title).where(
            KnowledgeSource.name == "regional-dx-call.md")).scalar_one()
    assert title == "地域DX伴走支援事業 公募のご案内(サンプル)"
    replies = Engine(sample_kb_services).handle(InboundMessage(channel="cli", program="regional-dx",
                                                               external_user_id="titles", text="プレゼンテーションは何分ですか"))
    assert replies[0].meta["outcome"] == "unsure"
    # The sources the not-sure reply quotes (the web chat links them), and where each excerpt stands.
    cited = [c["label"] for c in replies[0].meta["citations"]]
    assert cited and all(label.startswith(f"{title} ／ ") for label in cited), cited
    where = [line.rsplit("（", 1)[1] for line in replies[0].text.split("\n") if line.startswith("・「")]
    assert where and all(w.startswith("地域DX伴走支援事業 公募のご案内(サンプル) ／ ") for w in where), where
    assert all("この案内は" not in label for label in cited + where)


def test_an_answer_never_runs_a_heading_into_its_sentence(sample_kb_services: Services) -> None:
    """The heading line above the answer was taken as its short neighbour: 「2. 応募の受付応募の受付期間は…」."""
    replies = Engine(sample_kb_services).handle(InboundMessage(channel="cli", program="regional-dx",
                                                               external_user_id="heading",
                                                               text="応募の受付期間はいつまでですか"))
    answer = replies[0].text.split("\n")[0]
    assert "4月28日" in answer and not answer.startswith("2. 応募の受付"), answer
