"""faq program: a staff-answer FAQ entry belongs to a program (its ticket's), or is shared by an admin

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('faq_candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('program', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('shared', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_faq_candidates_program', ['program'], unique=False)
    # A candidate made from a ticket belongs to the ticket's program (NULL: the default program's).
    op.execute("UPDATE faq_candidates SET program = (SELECT tickets.program FROM tickets "
               "WHERE tickets.id = faq_candidates.ticket_id) WHERE ticket_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('faq_candidates', schema=None) as batch_op:
        batch_op.drop_index('ix_faq_candidates_program')
        batch_op.drop_column('shared')
        batch_op.drop_column('program')
