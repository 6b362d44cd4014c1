"""The database handle: engine, sessions and schema migrations.

SQLite runs in WAL mode with foreign keys on, so the terminal chat and a web
server can share one file; PostgreSQL is used as it comes. The schema is
always brought up by Alembic (`Database.migrate`), never by `create_all`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _private_file(path: Path) -> None:
    """The SQLite file readable by its owner only (0600; SQLite gives its -wal and -shm files the same
    mode), in a directory only its owner can enter (0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if existing.exists():
            existing.chmod(0o600)


#: Connections besides the request threads': the delivery worker, its tasks, startup and the CLI.
SPARE_CONNECTIONS = 8


class Database:
    """Owns one SQLAlchemy engine and hands out sessions.

    The pool holds one connection per thread that may use it (`threads`, the server's request threads,
    plus spares), so a request never waits for a connection; and no code path holds one session while
    opening another from the same pool (the knowledge base reads through `unpooled()`), so the pool
    cannot deadlock however many requests arrive (it did at 16 concurrent users with 5 + 10).
    """

    def __init__(self, url: str, *, threads: int = 40, pooled: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.threads = threads
        size = threads + SPARE_CONNECTIONS
        pool_args: dict[str, object] = ({"pool_size": size, "max_overflow": 0, "pool_timeout": 60} if pooled
                                        else {"poolclass": NullPool})
        if self.is_sqlite:
            db_path = url.split("///", 1)[-1]
            if db_path and db_path != ":memory:":
                _private_file(Path(db_path))
            self.engine: Engine = create_engine(url, connect_args={"timeout": 10}, hide_parameters=True, **pool_args)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=pooled, hide_parameters=True, **pool_args)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def unpooled(self) -> Database:
        """The same database through connections opened on demand (no pool to wait for): for reads made
        while a request may already hold a pooled connection (the knowledge base's freshness check)."""
        return Database(self.url, threads=self.threads, pooled=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def alembic_config(self, data_dir: Path | None = None) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["data_dir"] = data_dir
        return cfg

    def migrate(self, data_dir: Path | None = None) -> None:
        """Bring the schema to the newest migration (idempotent). `data_dir`: where migrations that move data
        out of files into tables (the console's saved replies) find those files."""
        if self.is_current():
            return
        cfg = self.alembic_config(data_dir)
        with self.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def is_current(self) -> bool:
        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return current == head

    def ping(self) -> bool:
        """The database answers and accepts a write (a read-only or full disk is not ready): one small
        row of `throttle_counters` is written and committed."""
        try:
            with self.engine.begin() as connection:
                connection.execute(text("SELECT 1"))
                connection.execute(text("DELETE FROM throttle_counters WHERE key = 'readyz'"))
                connection.execute(text("INSERT INTO throttle_counters (key, window_start, count) "
                                        "VALUES ('readyz', CURRENT_TIMESTAMP, 1)"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
