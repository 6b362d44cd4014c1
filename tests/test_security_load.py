"""64 concurrent users with unique questions (issue 20, finding 4): the server deadlocked at 16 (every
request waited 30 s for a second pooled connection while holding one, then 500). Real HTTP against
uvicorn, a real knowledge base, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bot.services import Services
from bot.settings import SAMPLE_KB_DIR
from integrations.web import create_app
from knowledge.ingest import ingest_paths
from tests.conftest import LiveServer, make_settings

TOKEN = "load-test-chat-token"
TOPICS = ["専門家派遣の回数", "謝金の単価", "申し込みの方法", "日当の条件", "宿泊費の上限", "交通費の扱い",
          "専門家の選び方", "報告書の期限"]


def test_64_concurrent_users_with_unique_questions(tmp_path: Path, database_url: str | None) -> None:
    services = Services.create(make_settings(tmp_path, database_url, staff__api_token=TOKEN,
                                             limits__messages_per_user_per_minute=10_000,
                                             limits__messages_per_channel_per_second=10_000))
    ingest_paths(services, [SAMPLE_KB_DIR])
    with LiveServer(create_app(services)) as server:

        async def user(client: httpx.AsyncClient, n: int) -> list[int]:
            codes = []
            for round_ in range(2):  # every question differs: no answer comes from the cache
                question = f"{TOPICS[n % len(TOPICS)]}について教えてください（問い合わせ{n}-{round_}）"
                response = await client.post("/api/chat", json={"user_id": f"load-{n}", "text": question})
                codes.append(response.status_code)
            return codes

        async def burst() -> tuple[list[list[int]], float]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120,
                                         headers={"Authorization": f"Bearer {TOKEN}"},
                                         limits=httpx.Limits(max_connections=64)) as client:
                started = time.monotonic()
                results = await asyncio.gather(*(user(client, n) for n in range(64)))
                return results, time.monotonic() - started

        # In a thread of its own: the session's Playwright (a browser test run earlier in this worker) keeps an
        # event loop running in the main thread, where asyncio.run refuses to start another.
        with ThreadPoolExecutor(1) as pool:
            results, seconds = pool.submit(asyncio.run, burst()).result()
    codes = [code for codes in results for code in codes]
    assert codes == [200] * 128, {code: codes.count(code) for code in set(codes)}
    assert seconds < 60, seconds
    services.close()
