"""the writers' turns record what they changed

Revision ID: 0011
Revises: 0010
(issue 14: a writer forgets only the messages and SMSC ids other instances' turns changed)
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('writer_touches',
    sa.Column('epoch', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('writer', sa.String(length=64), nullable=True),
    sa.Column('changes', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('epoch', name=op.f('pk_writer_touches'))
    )


def downgrade() -> None:
    op.drop_table('writer_touches')
