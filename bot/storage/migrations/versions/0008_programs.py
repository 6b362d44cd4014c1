"""programs: the program of conversations, tickets, hearing responses and visits; staff and tokens per program

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _foreign_keys(on: bool) -> None:
    """SQLite changes a unique constraint by rebuilding the table (copy, drop, rename); with foreign keys on,
    dropping `conversations` while messages and tickets point at it fails. Outside a transaction (the driver
    opens one only for data changes, so an upgrade of an existing database runs this DDL outside one)
    `foreign_keys` can be switched off and back on; inside one (a fresh database, where the tables are empty)
    the checks are deferred to the commit, when the rebuilt table holds the same ids again."""
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
        if not on:
            op.execute('PRAGMA defer_foreign_keys = ON')


def upgrade() -> None:
    _foreign_keys(False)
    # A conversation is one person's thread on one channel at one entry point ('' = a general one).
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('program', sa.String(length=40), server_default='', nullable=False))
        batch_op.drop_constraint('uq_conversation_person_channel', type_='unique')
        batch_op.create_unique_constraint('uq_conversation_person_channel_program', ['person_id', 'channel', 'program'])
    # Records owned by a program (NULL: rows from before programs, owned by the default program).
    for table in ('tickets', 'form_responses', 'visits'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('program', sa.String(length=40), nullable=True))
            batch_op.create_index(f'ix_{table}_program', ['program'], unique=False)
    for table in ('staff_accounts', 'api_tokens'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('programs', sa.JSON(), nullable=True))
    _foreign_keys(True)


def downgrade() -> None:
    _foreign_keys(False)
    for table in ('staff_accounts', 'api_tokens'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('programs')
    for table in ('tickets', 'form_responses', 'visits'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_program')
            batch_op.drop_column('program')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_constraint('uq_conversation_person_channel_program', type_='unique')
        batch_op.create_unique_constraint('uq_conversation_person_channel', ['person_id', 'channel'])
        batch_op.drop_column('program')
    _foreign_keys(True)
