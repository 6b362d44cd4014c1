"""security: attempt counters, server-side staff and web-chat sessions, stored webhook events, visit
confirmation evidence; staff user names normalized (NFKC, case-folded, stripped)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:30:00
"""
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'throttle_counters',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('window_start', sa.DateTime(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_table(
        'staff_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.Column('ended_reason', sa.String(length=30), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_accounts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_staff_sessions_staff_id', 'staff_sessions', ['staff_id'])
    op.create_table(
        'web_sessions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('external_user_id', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('token_hash'),
        sa.UniqueConstraint('external_user_id'),
    )
    op.create_table(
        'webhook_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('event_key', sa.String(length=200), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('processed_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('channel', 'event_key', name='uq_webhook_event'),
    )
    op.create_index('ix_webhook_events_processed_at', 'webhook_events', ['processed_at'])
    op.create_table(
        'visit_confirmation_evidence',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('visit_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=True),
        sa.Column('typed_name', sa.String(length=200), nullable=True),
        sa.Column('client_ip', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=300), nullable=True),
        sa.Column('flagged', sa.Boolean(), nullable=False),
        sa.Column('flag_reason', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_visit_confirmation_evidence_visit_id', 'visit_confirmation_evidence', ['visit_id'])
    # Existing user names get the spelling logins now use; a name whose normal form is taken keeps its own.
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, username FROM staff_accounts ORDER BY id")).all()
    taken = {name for _, name in rows}
    for row_id, name in rows:
        normal = unicodedata.normalize("NFKC", name or "").casefold().strip()
        if normal != name and normal and normal not in taken:
            connection.execute(sa.text("UPDATE staff_accounts SET username = :u WHERE id = :i"),
                               {"u": normal, "i": row_id})
            taken.discard(name)
            taken.add(normal)


def downgrade() -> None:
    op.drop_table('visit_confirmation_evidence')
    op.drop_table('webhook_events')
    op.drop_table('web_sessions')
    op.drop_table('staff_sessions')
    op.drop_table('throttle_counters')
