"""several instances on one database: instances, leases, duties, the writers' epoch

Revision ID: 0010
Revises: 0009
(issue 14)
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
    op.create_table('instances',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=False),
    sa.Column('smscs', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instances'))
    )
    op.create_table('cluster_duties',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_cluster_duties'))
    )
    op.create_table('writer_epoch',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('writer', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_writer_epoch'))
    )
    op.execute("INSERT INTO writer_epoch (id, epoch) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table('writer_epoch')
    op.drop_table('cluster_duties')
    op.drop_table('instances')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('lease_owner')
