"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:04:50.801196
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('accounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('name', name=op.f('uq_accounts_name'))
    )
    op.create_table('inbound_fragments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('smsc', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('destination', sa.String(length=32), nullable=False),
    sa.Column('data_coding', sa.Integer(), nullable=False),
    sa.Column('reference', sa.Integer(), nullable=True),
    sa.Column('total', sa.Integer(), nullable=True),
    sa.Column('number', sa.Integer(), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('tlvs', sa.Text(), nullable=True),
    sa.Column('dedupe_key', sa.String(length=64), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_fragments'))
    )
    with op.batch_alter_table('inbound_fragments', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_fragments_dedupe_key', ['dedupe_key'], unique=False)

    op.create_table('inbound_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('smsc', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('destination', sa.String(length=32), nullable=False),
    sa.Column('data_coding', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('parts', sa.Integer(), nullable=False),
    sa.Column('tlvs', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_messages_destination', ['destination', 'received_at'], unique=False)

    op.create_table('message_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=32), nullable=False),
    sa.Column('part_no', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_events'))
    )
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.create_index('ix_message_events_message_id', ['message_id'], unique=False)

    op.create_table('pending_receipts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('smsc', sa.String(length=64), nullable=False),
    sa.Column('smsc_key', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_receipts'))
    )
    with op.batch_alter_table('pending_receipts', schema=None) as batch_op:
        batch_op.create_index('ix_pending_receipts_smsc_key', ['smsc', 'smsc_key'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('sender', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=16), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('encoding', sa.String(length=8), nullable=False),
    sa.Column('parts', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('refunded', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('concat_ref', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('smsc', sa.String(length=64), nullable=True),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('ref_id', sa.String(length=128), nullable=True),
    sa.Column('params', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=True),
    sa.Column('final_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_messages_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_messages_account_job', ['account_id', 'job_id', 'id'], unique=False, sqlite_where=sa.text('job_id IS NOT NULL'), postgresql_where=sa.text('job_id IS NOT NULL'))
        batch_op.create_index('ix_messages_account_recipient', ['account_id', 'recipient', 'id'], unique=False)
        batch_op.create_index('ix_messages_account_sender', ['account_id', 'sender', 'id'], unique=False)
        batch_op.create_index('ix_messages_account_status', ['account_id', 'status', 'id'], unique=False)
        batch_op.create_index('ix_messages_queued', ['id'], unique=False, sqlite_where=sa.text("status = 'queued'"), postgresql_where=sa.text("status = 'queued'"))

    op.create_table('parts',
    sa.Column('message_id', sa.String(length=32), nullable=False),
    sa.Column('part_no', sa.Integer(), nullable=False),
    sa.Column('smsc', sa.String(length=64), nullable=True),
    sa.Column('smsc_id', sa.String(length=64), nullable=True),
    sa.Column('smsc_key', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('submitted_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_parts_message_id')),
    sa.PrimaryKeyConstraint('message_id', 'part_no', name=op.f('pk_parts'))
    )
    with op.batch_alter_table('parts', schema=None) as batch_op:
        batch_op.create_index('ix_parts_smsc_key', ['smsc', 'smsc_key'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('parts', schema=None) as batch_op:
        batch_op.drop_index('ix_parts_smsc_key')

    op.drop_table('parts')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_queued', sqlite_where=sa.text("status = 'queued'"), postgresql_where=sa.text("status = 'queued'"))
        batch_op.drop_index('ix_messages_account_status')
        batch_op.drop_index('ix_messages_account_sender')
        batch_op.drop_index('ix_messages_account_recipient')
        batch_op.drop_index('ix_messages_account_job', sqlite_where=sa.text('job_id IS NOT NULL'), postgresql_where=sa.text('job_id IS NOT NULL'))
        batch_op.drop_index('ix_messages_account_id_id')

    op.drop_table('messages')
    with op.batch_alter_table('pending_receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_pending_receipts_smsc_key')

    op.drop_table('pending_receipts')
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.drop_index('ix_message_events_message_id')

    op.drop_table('message_events')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_messages_destination')

    op.drop_table('inbound_messages')
    with op.batch_alter_table('inbound_fragments', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_fragments_dedupe_key')

    op.drop_table('inbound_fragments')
    op.drop_table('accounts')

