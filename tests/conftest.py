"""Shared fixtures: isolated settings, real SQLite and PostgreSQL databases, a live HTTP server."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.engine import Engine
from bot.messages import InboundMessage, Reply
from bot.services import Services
from bot.settings import ENV_PREFIX, LEGACY_ENV, SAMPLE_KB_DIR, Settings, get_settings
from tests.browser_support import browser  # noqa: F401  (one Chromium per test session, for every browser test)

PG_URL = os.environ.get("MADOGUCHI_TEST_PG_URL")
#: Variables that steer the test run itself (not settings): kept when a test's environment is cleaned.
TEST_CONTROL_ENV = ("MADOGUCHI_TEST_", "MADOGUCHI_REQUIRE_", "MADOGUCHI_SCREENSHOTS")
#: `/api/chat` with a body `user_id` needs a token of scope `chat`: tests talk as integrations do.
CHAT_TOKEN = "test-chat-token-0123456789"
CHAT_HEADERS = {"Authorization": f"Bearer {CHAT_TOKEN}"}
FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 20, interval: float = 0.1,
               failure: str | Callable[[], str] = "condition not reached") -> T:
    """The first truthy value of `probe()` within `timeout` seconds, asked every `interval` seconds (what a
    server, a worker or a fake platform does after the test's request has returned); else an AssertionError
    saying `failure` (a text, or a function giving one with what was seen by then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(failure() if callable(failure) else failure)
        time.sleep(interval)


def responds(url: str) -> bool:
    """`GET url` answers 200 (a server that is not listening yet is False, not an error)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the developer's .env or data dir."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key in LEGACY_ENV or (key.startswith(ENV_PREFIX) and not key.startswith(TEST_CONTROL_ENV)):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: object) -> Settings:
    """Settings on `tmp_path/data`; overrides are named like the environment variables without the prefix:
    `staff__api_token=...` is `MADOGUCHI_STAFF__API_TOKEN`."""
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "database": {"url": database_url}}
    for key, value in overrides.items():
        group, _, field = key.partition("__")
        if field:
            values.setdefault(group, {})[field] = value
        else:
            values[group] = value
    return Settings(**values)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped afterwards."""
    if not PG_URL:
        if os.environ.get("MADOGUCHI_REQUIRE_PG"):
            pytest.fail("MADOGUCHI_REQUIRE_PG is set but MADOGUCHI_TEST_PG_URL is empty")
        pytest.skip("MADOGUCHI_TEST_PG_URL not set (make test starts a PostgreSQL server when it can)")
    name = f"madoguchi_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": name})
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Run a storage test on SQLite (the default) and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_database")


@pytest.fixture
def services(tmp_path: Path, database_url: str | None) -> Iterator[Services]:
    svc = Services.create(make_settings(tmp_path, database_url))
    yield svc
    svc.close()


def send(engine: Engine, text: str | None = None, *, user: str = "u1", channel: str = "web",
         choice: str | None = None, **fields: Any) -> list[Reply]:
    """One message through the engine as a channel adapter delivers it (`fields`: location, timestamp,
    platform_message_id, program ... of `InboundMessage`). A module with another default user or time binds it
    once: `send = functools.partial(conftest.send, user="sme-1")`."""
    return engine.handle(InboundMessage(channel=channel, external_user_id=user, text=text, choice=choice, **fields))


@pytest.fixture
def engine(services: Services) -> Engine:
    """The engine over this test's own services (a test module may override it, e.g. to install a test
    capability or to use `sample_kb_services`)."""
    return Engine(services)


@pytest.fixture
def sqlite_services(tmp_path: Path) -> Iterator[Services]:
    svc = Services.create(make_settings(tmp_path))
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def sample_kb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the shipped sample knowledge base ingested, once per session (embedding is the
    slow part). Never used directly: each test gets its own copy (`sample_kb_services`)."""
    from knowledge.ingest import ingest_paths

    root = tmp_path_factory.mktemp("samplekb") / "data"
    svc = Services.create(Settings(data_dir=root))
    ingest_paths(svc, [SAMPLE_KB_DIR])
    svc.close()
    return root


@pytest.fixture
def sample_kb_services(sample_kb_template: Path, tmp_path: Path) -> Iterator[Services]:
    """Services of this test alone, over a private copy of the sample knowledge base (tickets, published
    FAQs and settings changed by one test are never seen by another)."""
    svc = sample_kb_copy(sample_kb_template, tmp_path)
    yield svc
    svc.close()


@pytest.fixture
def learned_sample_kb(sample_kb_template: Path, tmp_path: Path) -> Iterator[Services]:
    """The learned pipeline, named whatever the default, over a private copy of the sample knowledge base (for
    the tests of its stages)."""
    services = sample_kb_copy(sample_kb_template, tmp_path, "learned")
    yield services
    services.close()


def sample_kb_copy(template: Path, tmp_path: Path, pipeline: str | None = None) -> Services:
    """Services over a private copy of the ingested sample knowledge base, answered by `pipeline` (the
    default one when not named: a test that asserts one pipeline's answers names it)."""
    data = tmp_path / "samplekb"
    shutil.copytree(template, data)
    return Services.create(Settings(data_dir=data, knowledge={"pipeline": pipeline}) if pipeline
                           else Settings(data_dir=data))


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """A real Chroma server (`chroma run` from the chromadb package) on a free port with its own data dir.
    Skipped when the `chroma` command is missing, unless MADOGUCHI_REQUIRE_CHROMA is set (CI sets it)."""
    import subprocess
    import sys

    command = Path(sys.executable).with_name("chroma")
    if not command.exists():
        found = shutil.which("chroma")
        if found is None:
            if os.environ.get("MADOGUCHI_REQUIRE_CHROMA"):
                pytest.fail("MADOGUCHI_REQUIRE_CHROMA is set but the chroma command is missing")
            pytest.skip("the chroma command (chromadb package) is not installed")
        command = Path(found)
    port = free_port()
    data = tmp_path / "chroma-server"
    process = subprocess.Popen([str(command), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError("chroma run exited")
        return responds(f"{url}/api/v2/heartbeat")

    try:
        eventually(up, timeout=60, interval=0.2, failure="chroma run did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn serving the real app on a loopback port, in a thread."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=2)  # an open event stream must not hold the stop
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        eventually(lambda: self.server.started, timeout=15, interval=0.02, failure="server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def ingest_two_calls(root: Path, pipeline: str) -> Services:
    """Services over the two sample calls of tests/test_knowledge_retrieval.py, ingested under `root` for
    `pipeline` (each pipeline's tests name the one whose answers they assert)."""
    from knowledge.ingest import ingest_paths
    from tests.test_knowledge_retrieval import CALL_A, CALL_B  # a test module's texts: conftest loads first

    docs = root / "docs"
    docs.mkdir()
    (docs / "midori-dx-call.md").write_text(CALL_A, encoding="utf-8")
    (docs / "aozora-tourism-call.md").write_text(CALL_B, encoding="utf-8")
    services = Services.create(Settings(data_dir=root / "data", knowledge={"pipeline": pipeline}))
    ingest_paths(services, [docs])
    return services


@pytest.fixture(scope="module")
def learned_calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The two sample calls, ingested for the learned pipeline (the pipeline's stage tests and its end-to-end
    tests read the same index)."""
    services = ingest_two_calls(tmp_path_factory.mktemp("learned-calls"), "learned")
    yield services
    services.close()
