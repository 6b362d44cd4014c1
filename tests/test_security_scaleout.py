"""Scale-out on real parts (issue 20, finding 20): two `madoguchi serve` processes on one PostgreSQL and
one Chroma server (`chroma run`, started by the test); a document ingested through one instance is
answered by the other without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, eventually
from tests.test_security_restart import Server

NEW_DOCUMENT = """# まどぐち試験補助金 公募要領

## 補助上限額

まどぐち試験補助金の補助上限額は、1社あたり777万円です。

## 申請期限

申請の受付は令和9年3月31日までです。
"""
QUESTION = "まどぐち試験補助金の補助上限額はいくらですか？"


def test_two_instances_share_one_postgresql_and_one_chroma_server(pg_database: str, chroma_server: str,
                                                                   tmp_path: Path) -> None:
    base = os.environ | {"MADOGUCHI_DATABASE__URL": pg_database, "MADOGUCHI_KNOWLEDGE__CHROMA_URL": chroma_server,
                         "MADOGUCHI_STAFF__API_TOKEN": CHAT_TOKEN, "MADOGUCHI_LOG__LEVEL": "WARNING"}
    instances = []
    for name in ("one", "two"):
        env = base | {"MADOGUCHI_DATA_DIR": str(tmp_path / name)}
        server = Server(tmp_path / name, env)
        server.start()  # the first one loads the sample knowledge base into PostgreSQL and the Chroma server
        instances.append((server, env))
    try:
        (one, one_env), (two, _) = instances

        def ask(server: Server) -> str:
            response = httpx.post(f"{server.url}/api/chat", json={"user_id": "scale-user", "text": QUESTION},
                                  headers=CHAT_HEADERS, timeout=60)
            assert response.status_code == 200, response.text
            return str(response.json()["replies"][0]["text"])

        assert "777万円" not in ask(two)  # instance two has its index loaded, without the new document
        assert httpx.get(f"{two.url}/readyz", timeout=30).json()["checks"] == {"database": True, "index": True}
        docs = tmp_path / "new-docs"
        docs.mkdir()
        (docs / "madoguchi-test-subsidy.md").write_text(NEW_DOCUMENT, encoding="utf-8")
        subprocess.run([str(Path(sys.executable).with_name("madoguchi")), "knowledge", "ingest", str(docs)],
                       env=one_env, check=True, capture_output=True, timeout=300)  # through instance one
        answers: list[str] = []  # instance two, never restarted
        eventually(lambda: answers.append(ask(two)) or "777万円" in answers[-1], timeout=30, interval=1,
                   failure=lambda: f"instance two still answers {answers[-1]}")
        assert "777万円" in ask(one)
    finally:
        for server, _ in instances:
            server.stop()
