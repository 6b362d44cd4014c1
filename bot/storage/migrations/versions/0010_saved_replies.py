"""saved replies: the console's canned answers move from `<data dir>/staff/saved_replies.json` into a table

The file's entries are copied into the table and the file is renamed `saved_replies.json.imported` (the data
dir comes from the caller: `Database.migrate(data_dir=...)`; without one there is no file to read). A
downgrade writes the table back to the file.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 15:10:00
"""
import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _file() -> Path | None:
    data_dir = context.config.attributes.get("data_dir")
    return Path(data_dir) / "staff" / "saved_replies.json" if data_dir else None


def upgrade() -> None:
    table = op.create_table(
        'saved_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=80), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['created_by'], ['staff_accounts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('title'),
    )
    path = _file()
    if path is None or not path.exists():
        return
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        entries = []  # the console showed an unreadable file as empty; it is kept as it was, renamed
    now = datetime.now(UTC).replace(tzinfo=None)
    rows: dict[str, str] = {}  # by title: a later entry replaced an earlier one of the same title
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("title") or "").strip() and str(entry.get("text") or "").strip():
            rows[str(entry["title"]).strip()[:80]] = str(entry["text"]).strip()
    op.bulk_insert(table, [{"title": title, "text": text, "created_at": now, "updated_at": now}
                           for title, text in rows.items()])
    path.replace(path.with_name(path.name + ".imported"))


def downgrade() -> None:
    path = _file()
    if path is not None:
        rows = op.get_bind().execute(sa.text("SELECT title, text FROM saved_replies ORDER BY id")).all()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([{"title": r[0], "text": r[1]} for r in rows], ensure_ascii=False, indent=1),
                        encoding="utf-8")
    op.drop_table('saved_replies')
