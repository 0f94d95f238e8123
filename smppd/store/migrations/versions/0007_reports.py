"""reports: message channel, sender credential and partner; rollups; reports, schedules,
campaigns

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=8), server_default=sa.text("'api'"), nullable=False))
        batch_op.add_column(sa.Column('sent_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('partner', sa.String(length=64), nullable=True))
    # Messages written before this revision: a job's came through the job channel.
    op.execute("UPDATE messages SET channel = 'job' WHERE job_id IS NOT NULL")
    op.create_index('ix_messages_account_ref_id', 'messages', ['account_id', 'ref_id', 'id'], unique=False,
                    sqlite_where=sa.text('ref_id IS NOT NULL'), postgresql_where=sa.text('ref_id IS NOT NULL'))
    op.create_index('ix_messages_account_partner', 'messages', ['account_id', 'partner', 'id'], unique=False,
                    sqlite_where=sa.text('partner IS NOT NULL'), postgresql_where=sa.text('partner IS NOT NULL'))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('campaign_id', sa.String(length=32), nullable=True))
    op.create_index('ix_jobs_account_campaign', 'jobs', ['account_id', 'campaign_id'], unique=False,
                    sqlite_where=sa.text('campaign_id IS NOT NULL'), postgresql_where=sa.text('campaign_id IS NOT NULL'))

    op.create_table('message_rollups',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error', sa.String(length=32), nullable=False),
    sa.Column('messages', sa.BigInteger(), nullable=False),
    sa.Column('parts', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('refunded', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'bucket', 'status', 'error', name=op.f('pk_message_rollups'))
    )

    op.create_table('campaigns',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_campaigns_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    op.create_index('ix_campaigns_account_id_id', 'campaigns', ['account_id', 'id'], unique=False)

    op.create_table('reports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('period_start', sa.DateTime(), nullable=True),
    sa.Column('period_end', sa.DateTime(), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('progress', sa.Float(), server_default=sa.text('0'), nullable=False),
    sa.Column('rows', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('file_name', sa.String(length=255), nullable=True),
    sa.Column('file_path', sa.Text(), nullable=True),
    sa.Column('file_size', sa.BigInteger(), nullable=True),
    sa.Column('content_type', sa.String(length=128), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('email_state', sa.String(length=8), nullable=True),
    sa.Column('email_attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('email_error', sa.Text(), nullable=True),
    sa.Column('email_next_at', sa.DateTime(), nullable=True),
    sa.Column('schedule_id', sa.String(length=32), nullable=True),
    sa.Column('run_key', sa.String(length=96), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('owner', sa.String(length=160), nullable=True),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_reports_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('run_key', name=op.f('uq_reports_run_key'))
    )
    op.create_index('ix_reports_account_id_id', 'reports', ['account_id', 'id'], unique=False)
    op.create_index('ix_reports_state', 'reports', ['state'], unique=False)

    op.create_table('report_schedules',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('every', sa.String(length=8), nullable=False),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('next_run', sa.DateTime(), nullable=False),
    sa.Column('last_run', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_report_schedules_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_schedules'))
    )
    op.create_index('ix_report_schedules_account_id_id', 'report_schedules', ['account_id', 'id'], unique=False)
    op.create_index('ix_report_schedules_next_run', 'report_schedules', ['next_run'], unique=False)

    # Rollups of the messages already kept (see smppd.store.rollups).
    from smppd.store import rollups
    rollups.rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index('ix_report_schedules_next_run', table_name='report_schedules')
    op.drop_index('ix_report_schedules_account_id_id', table_name='report_schedules')
    op.drop_table('report_schedules')
    op.drop_index('ix_reports_state', table_name='reports')
    op.drop_index('ix_reports_account_id_id', table_name='reports')
    op.drop_table('reports')
    op.drop_index('ix_campaigns_account_id_id', table_name='campaigns')
    op.drop_table('campaigns')
    op.drop_table('message_rollups')
    op.drop_index('ix_jobs_account_campaign', table_name='jobs')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('campaign_id')
        batch_op.drop_column('description')
    op.drop_index('ix_messages_account_partner', table_name='messages')
    op.drop_index('ix_messages_account_ref_id', table_name='messages')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('partner')
        batch_op.drop_column('sent_by')
        batch_op.drop_column('channel')
