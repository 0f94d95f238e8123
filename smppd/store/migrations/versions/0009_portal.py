"""portal users and sessions; who sent a message or job (channel, sent_by)

Revision ID: 0009
Revises: 0008
(issue 15; messages.channel and messages.sent_by come with 0005, the reports.)
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=128), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('must_change_password', sa.Boolean(), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('disabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_portal_users_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_users'))
    )
    with op.batch_alter_table('portal_users', schema=None) as batch_op:
        batch_op.create_index('ix_portal_users_login', ['login'], unique=True)
        batch_op.create_index('ix_portal_users_account_id', ['account_id', 'id'], unique=False)
    op.create_table('portal_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('operator', sa.String(length=128), nullable=True),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_sessions'))
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_portal_sessions_user_id', ['user_id'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('sent_by', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('sent_by')
        batch_op.drop_column('channel')
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_portal_sessions_user_id')
    op.drop_table('portal_sessions')
    with op.batch_alter_table('portal_users', schema=None) as batch_op:
        batch_op.drop_index('ix_portal_users_account_id')
        batch_op.drop_index('ix_portal_users_login')
    op.drop_table('portal_users')
