"""resent parts' other ids, learnt receipt id readings, receipts waiting for one

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('part_aliases',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('smsc', sa.String(length=64), nullable=False),
    sa.Column('smsc_key', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=32), nullable=False),
    sa.Column('part_no', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_part_aliases'))
    )
    with op.batch_alter_table('part_aliases', schema=None) as batch_op:
        batch_op.create_index('ix_part_aliases_smsc_key', ['smsc', 'smsc_key'], unique=False)
    op.create_table('smsc_id_modes',
    sa.Column('smsc', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('reading', sa.String(length=16), nullable=False),
    sa.Column('learned_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('smsc', 'source', name=op.f('pk_smsc_id_modes'))
    )
    with op.batch_alter_table('pending_receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('needs_reading', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('source', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pending_receipts', schema=None) as batch_op:
        batch_op.drop_column('source')
        batch_op.drop_column('needs_reading')
    op.drop_table('smsc_id_modes')
    with op.batch_alter_table('part_aliases', schema=None) as batch_op:
        batch_op.drop_index('ix_part_aliases_smsc_key')
    op.drop_table('part_aliases')
