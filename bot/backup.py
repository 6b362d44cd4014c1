"""Backups without downtime, and restore: database, vector index, published FAQ files.

SQLite is copied with its online backup API (readers and writers keep going);
PostgreSQL with `pg_dump` (a consistent snapshot while the service runs).
The embedded Chroma index is copied too; with a Chroma server, or with
`--rebuild-index`, the index is rebuilt from the knowledge sources on restore
(fast: the vectors are cached in the database). Each backup is a directory
with a manifest; only the newest `backup_generations` (default 3) are kept.
"""

from __future__ import annotations

import glob
import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.services import Services
from bot.storage.models import AuditEvent, Message, Person

MANIFEST = "manifest.json"


class BackupError(RuntimeError):
    pass


@dataclass
class BackupInfo:
    path: Path
    manifest: dict[str, Any]


def backups_dir(services: Services) -> Path:
    return services.settings.backup.dir or services.settings.data_dir / "backups"


def _pg_tool(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise BackupError(f"{name} が見つかりません（PostgreSQL のクライアントを入れてください）")
    return found


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_path(services: Services) -> Path:
    return Path(services.db.url.split("///", 1)[-1])


def create(services: Services, dest: Path | None = None) -> BackupInfo:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = (dest or backups_dir(services)) / f"madoguchi-{stamp}"
    target.mkdir(parents=True)
    manifest: dict[str, Any] = {"created_at": datetime.now(UTC).isoformat(), "database": "", "index": "",
                                "counts": _counts(services)}
    if services.db.is_sqlite:
        source = sqlite3.connect(_sqlite_path(services))
        copy = sqlite3.connect(target / "madoguchi.sqlite3")
        with copy:
            source.backup(copy)  # online: pages are copied while other connections keep working
        copy.close()
        source.close()
        manifest["database"] = "sqlite"
    else:
        subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={target / 'db.dump'}",
                        _libpq_url(services.db.url)], check=True, capture_output=True)
        manifest["database"] = "postgresql"
    chroma = services.settings.chroma_dir
    if services.settings.knowledge.chroma_url is None and chroma.exists():
        shutil.copytree(chroma, target / "chroma")
        manifest["index"] = "embedded-copy"
    else:
        manifest["index"] = "rebuild-from-sources"
    faq = services.settings.data_dir / "faq"
    if faq.exists():
        shutil.copytree(faq, target / "faq")
    (target / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    prune(services)
    return BackupInfo(target, manifest)


def _counts(services: Services) -> dict[str, int]:
    with services.db.session() as session:
        return {name: session.execute(select(func.count()).select_from(model)).scalar_one()
                for name, model in (("people", Person), ("messages", Message), ("audit_events", AuditEvent))}


def list_backups(services: Services) -> list[BackupInfo]:
    root = backups_dir(services)
    found = []
    for path in sorted(root.glob("madoguchi-*")) if root.exists() else []:
        manifest_path = path / MANIFEST
        if manifest_path.exists():
            found.append(BackupInfo(path, json.loads(manifest_path.read_text(encoding="utf-8"))))
    return found


def prune(services: Services) -> list[Path]:
    keep = services.settings.backup.generations
    removed = []
    for info in list_backups(services)[:-keep] if keep > 0 else []:
        shutil.rmtree(info.path)
        removed.append(info.path)
    return removed


def restore(services: Services, source: Path, *, rebuild_index: bool = False) -> dict[str, Any]:
    manifest_path = source / MANIFEST
    if not manifest_path.exists():
        raise BackupError(f"{source} はバックアップではありません（{MANIFEST} がありません）")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    kind = "sqlite" if services.db.is_sqlite else "postgresql"
    if manifest["database"] != kind:
        raise BackupError(f"このバックアップは {manifest['database']} 用です（現在は {kind}）")
    services.db.dispose()
    if kind == "sqlite":
        backup = sqlite3.connect(source / "madoguchi.sqlite3")
        live = sqlite3.connect(_sqlite_path(services))
        with live:
            backup.backup(live)
        live.close()
        backup.close()
    else:
        subprocess.run([_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
                        f"--dbname={_libpq_url(services.db.url)}", str(source / "db.dump")],
                       check=True, capture_output=True)
    faq = services.settings.data_dir / "faq"
    if (source / "faq").exists():
        shutil.rmtree(faq, ignore_errors=True)
        shutil.copytree(source / "faq", faq)
    if (source / "chroma").exists() and not rebuild_index and services.settings.knowledge.chroma_url is None:
        shutil.rmtree(services.settings.chroma_dir, ignore_errors=True)
        shutil.copytree(source / "chroma", services.settings.chroma_dir)
        index = "copied"
    else:
        from knowledge.ingest import ingest_paths  # heavy: loads chromadb and the embedder

        ingest_paths(services, services.settings.default_knowledge_paths, reset=True)
        index = "rebuilt"
    services.knowledge_changed()
    return {"database": kind, "index": index, "counts": _counts(services)}
