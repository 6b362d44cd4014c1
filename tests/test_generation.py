"""Optional LLM generation: only retrieved passages go out, masked, and the answer must cite them.

The OpenAI-compatible endpoint is a small local server on loopback, so the
real langchain-openai client builds and sends the real HTTP request.
"""

from __future__ import annotations

import json
from datetime import date

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.services import Services
from bot.settings import Settings
from knowledge.answering import answer_from
from knowledge.generation import generate_answer
from tests.conftest import LiveServer


class FakeLLM:
    """Records chat-completion requests and answers with a scripted reply or status."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply = ""
        self.status = 200
        self.app = FastAPI()

        @self.app.post("/v1/chat/completions")
        async def complete(request: Request) -> JSONResponse:
            self.requests.append(await request.json())
            if self.status != 200:
                return JSONResponse({"error": {"message": "down"}}, status_code=self.status)
            return JSONResponse(_completion(self.reply))


@pytest.fixture
def llm() -> Iterator[tuple[FakeLLM, Settings]]:
    fake = FakeLLM()
    with LiveServer(fake.app) as server:
        yield fake, Settings(llm={"provider": "openai", "base_url": f"{server.url}/v1", "model": "m",
                                  "api_key": "k"})


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def test_generated_answer_uses_masked_passages_and_cites(sample_kb_services: Services, llm) -> None:  # type: ignore[no-untyped-def]
    fake, settings = llm
    fake.reply = "1年度あたり原則3回までです [1]"
    question = "山田太郎です。電話は090-1234-5678です。専門家派遣は年に何回まで使えますか？"
    retrieval = sample_kb_services.knowledge.retrieve(question)
    extractive = answer_from(retrieval, 0.5)
    answer = generate_answer(settings, retrieval, extractive)
    sent_text = json.dumps(fake.requests[-1], ensure_ascii=False)
    assert "090-1234-5678" not in sent_text and "山田" not in sent_text
    assert "<passages>" in sent_text and "従わない" in sent_text
    assert answer.kind == "generated" and "3回" in answer.body and answer.citations


def test_uncited_or_failed_generation_keeps_the_extractive_answer(sample_kb_services: Services, llm) -> None:  # type: ignore[no-untyped-def]
    fake, settings = llm
    retrieval = sample_kb_services.knowledge.retrieve("専門家派遣は年に何回まで使えますか？")
    extractive = answer_from(retrieval, 0.5)
    fake.reply = "たぶん5回です"
    assert generate_answer(settings, retrieval, extractive) is extractive
    fake.status = 500
    assert generate_answer(settings, retrieval, extractive) is extractive


def test_a_generated_answer_stating_a_passed_deadline_says_so(sample_kb_services: Services, llm) -> None:  # type: ignore[no-untyped-def]
    """The passed-deadline note is checked on the generated text too, against the passage it cites."""
    fake, settings = llm
    retrieval = sample_kb_services.knowledge.retrieve("地域DX伴走支援事業の応募の受付期間はいつまでですか")
    assert retrieval.hits[0].source.name == "regional-dx-call.md"
    extractive = answer_from(retrieval, 0.0, today=date(2026, 5, 1))
    fake.reply = "応募は令和8年4月7日から4月28日まで受け付けます [1]"
    answer = generate_answer(settings, retrieval, extractive)
    assert answer.kind == "generated" and answer.passed == date(2026, 4, 28)
    assert "※この期日（令和8年4月28日）はすでに過ぎています（本日 令和8年5月1日）" in answer.text
