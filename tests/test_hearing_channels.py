"""The hearing sheet as users meet it: over real HTTP (`/api/chat`) and in the terminal chat,
including a process killed between two questions."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from bot.services import Services
from handlers.hearing.models import FormResponse
from integrations.web import create_app
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer, eventually, make_settings
from tests.hearing_script import answer_for, complete_interview


def test_interview_over_http_with_mistakes_back_skip_question_pause_and_resume(
        sample_kb_services: Services) -> None:
    user = "http-hearing"

    def post(server: LiveServer, text: str | None = None, choice: str | None = None) -> list[dict]:
        body = {"user_id": user, "text": text, "choice": choice}
        response = httpx.post(f"{server.url}/api/chat", json={k: v for k, v in body.items() if v}, timeout=60,
                              headers=CHAT_HEADERS)
        assert response.status_code == 200, response.text
        return response.json()["replies"]

    sample_kb_services.settings.staff.api_token = SecretStr(CHAT_TOKEN)
    with LiveServer(create_app(sample_kb_services)) as server:
        replies = post(server, choice="hearing:start")
        assert "【1/33】" in replies[-1]["text"] and replies[-1]["free_input"] is True
        post(server, "株式会社HTTP")
        skip = next(o for o in post(server, "戻る")[0]["options"] if o["label"] == "中断")
        assert skip["value"] == "flow:leave"
        post(server, "株式会社HTTP")
        post(server, choice="hearing:skip:corporate_number")
        post(server, "Webサービスの開発")
        replies = post(server, "1")  # 業種: the first choice
        assert "社員数" in replies[0]["text"]
        replies = post(server, "十人くらいかな")
        assert "数字でお答えください" in replies[0]["text"]
        replies = post(server, "専門家派遣を申し込むにはどうすればよいですか？")
        assert "よろず支援拠点" in replies[0]["text"] and "社員数" in replies[-1]["text"]
        post(server, "約１０人")
        replies = post(server, "中断")
        assert "5問目まで保存しました" in replies[0]["text"]

    # A restarted server (new app, same database) resumes where the user stopped.
    with LiveServer(create_app(sample_kb_services)) as server:
        replies = post(server, "ヒアリング開始")
        assert "前回の続き（6/32）" in replies[0]["text"] and "郵便番号" in replies[0]["text"]
        last = complete_interview(lambda text: [r["text"] for r in post(server, text)], start="〒100-0001")
        assert "受付番号：H-" in last[0]
    with sample_kb_services.db.session() as session:
        response = session.execute(select(FormResponse).where(
            FormResponse.answers["company_name"].as_string() == "株式会社HTTP")).scalar_one()
        assert response.status == "submitted"
        assert response.answers["employees"] == 10 and response.answers["industry"] == "製造業"
        assert response.answers["postal_code"] == "100-0001"


class TerminalChat:
    """`madoguchi chat` in a child process, read line by line from its stdout."""

    def __init__(self, data_dir: Path) -> None:
        env = os.environ | {"MADOGUCHI_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "COLUMNS": "400",
                            "NO_COLOR": "1", "TERM": "dumb"}
        executable = Path(sys.executable).with_name("madoguchi")
        self.process = subprocess.Popen([str(executable), "chat", "--no-ingest", "--user", "term-user"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env=env, text=True, encoding="utf-8", bufsize=1)
        self.output = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while True:
            char = self.process.stdout.read(1)
            if not char:
                return
            with self._lock:
                self.output += char

    def wait_prompt(self, after: int, timeout: float = 60) -> str:
        """The bot's output after offset `after`, once the next 「あなた>」 prompt appears."""
        def before_prompt() -> tuple[str] | None:  # a tuple: the text before the prompt may be empty
            with self._lock:
                index = self.output.find("あなた>", after)
                return (self.output[after:index],) if index >= 0 else None

        return eventually(before_prompt, timeout, 0.05,
                          lambda: f"no prompt; output so far:\n{self.output[after:]}")[0]

    def say(self, text: str) -> str:
        with self._lock:
            offset = self.output.rfind("あなた>") + len("あなた>")
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return self.wait_prompt(offset)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def test_terminal_interview_survives_a_kill_between_questions(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    chat = TerminalChat(data_dir)
    try:
        assert "窓口" in chat.wait_prompt(0)
        assert "【1/33】" in chat.say("ヒアリング開始")
        assert "【2/33】" in chat.say("株式会社ターミナル")
    finally:
        chat.kill()  # SIGKILL right after the second question was shown: no clean shutdown

    services = Services.create(make_settings(tmp_path))
    with services.db.session() as session:
        response = session.execute(select(FormResponse)).scalar_one()
        assert response.answers == {"company_name": "株式会社ターミナル"}
    services.close()

    chat = TerminalChat(data_dir)
    try:
        chat.wait_prompt(0)
        screen = chat.say("ヒアリング開始")
        assert "前回の続き（2/33）" in screen
        for _ in range(60):
            if "ご回答内容の確認" in screen:
                break
            question = screen[screen.index("【"):]
            screen = chat.say(answer_for(question) or "")
        assert re.search(r"受付番号：H-\d{6}", chat.say("送信"))
    finally:
        chat.kill()
    services = Services.create(make_settings(tmp_path))
    with services.db.session() as session:
        response = session.execute(select(FormResponse)).scalar_one()
        assert response.status == "submitted" and response.answers["industry"] == "製造業"
        assert response.answers["dx_literacy"] == "medium" and response.answers["phase"] == "design_validation"
    services.close()
