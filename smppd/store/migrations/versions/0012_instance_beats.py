"""instances number their heartbeats

Revision ID: 0012
Revises: 0011
(issue 14: an instance that binds to a shared contract sends only once every other
instance bound to it has beaten since, i.e. has cut its own share)
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('instances', sa.Column('beat', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instances') as batch:
        batch.drop_column('beat')
