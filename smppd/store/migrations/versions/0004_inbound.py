"""inbound numbers, routing, contacts and polls

Revision ID: 0004
Revises: 0003
(issue 11; the lead re-chains the revision on merge)
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contact_groups',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contact_groups_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_groups'))
    )
    with op.batch_alter_table('contact_groups', schema=None) as batch_op:
        batch_op.create_index('ix_contact_groups_account_name', ['account_id', 'name'], unique=True)

    op.create_table('contacts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=False),
    sa.Column('first_name', sa.String(length=64), nullable=True),
    sa.Column('last_name', sa.String(length=64), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('fields', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contacts_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_account_phone', ['account_id', 'phone'], unique=True)

    op.create_table('discount_codes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('pool', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('vote_id', sa.String(length=32), nullable=True),
    sa.Column('given_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_discount_codes_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_discount_codes'))
    )
    with op.batch_alter_table('discount_codes', schema=None) as batch_op:
        batch_op.create_index('ix_discount_codes_account_pool_code', ['account_id', 'pool', 'code'], unique=True)
        batch_op.create_index('ix_discount_codes_free', ['account_id', 'pool', 'id'], unique=False, sqlite_where=sa.text('vote_id IS NULL'), postgresql_where=sa.text('vote_id IS NULL'))

    op.create_table('inbound_forwards',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=False),
    sa.Column('recipients', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_inbound_forwards_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_forwards'))
    )
    with op.batch_alter_table('inbound_forwards', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_forwards_pending', ['next_attempt_at'], unique=False, sqlite_where=sa.text("state = 'pending'"), postgresql_where=sa.text("state = 'pending'"))

    op.create_table('inbound_replies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=32), nullable=False),
    sa.Column('message_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_inbound_replies_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_replies'))
    )
    with op.batch_alter_table('inbound_replies', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_replies_recipient', ['recipient', 'created_at'], unique=False)

    op.create_table('inbound_reservations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=True),
    sa.Column('prefix_key', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=True),
    sa.Column('paid_until', sa.DateTime(), nullable=True),
    sa.Column('released_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_inbound_reservations_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_reservations'))
    )
    with op.batch_alter_table('inbound_reservations', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_reservations_account', ['account_id', 'number'], unique=False)
        batch_op.create_index('ix_inbound_reservations_number', ['number', 'prefix_key'], unique=False)

    op.create_table('inbound_settings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('prefix_key', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=True),
    sa.Column('auto_reply_from', sa.String(length=16), nullable=True),
    sa.Column('auto_reply_text', sa.Text(), nullable=True),
    sa.Column('forward_email', sa.Text(), nullable=True),
    sa.Column('forward_sms', sa.Text(), nullable=True),
    sa.Column('forward_url', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_inbound_settings_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_settings'))
    )
    with op.batch_alter_table('inbound_settings', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_settings_key', ['account_id', 'number', 'prefix_key'], unique=True)

    op.create_table('polls',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=True),
    sa.Column('prefix_key', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('sender', sa.String(length=16), nullable=False),
    sa.Column('replies', sa.Text(), nullable=False),
    sa.Column('limit_votes', sa.Integer(), nullable=False),
    sa.Column('limit_seconds', sa.Integer(), nullable=True),
    sa.Column('groups', sa.Text(), nullable=True),
    sa.Column('discount_pool', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_polls_account_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_polls'))
    )
    with op.batch_alter_table('polls', schema=None) as batch_op:
        batch_op.create_index('ix_polls_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_polls_number', ['number', 'prefix_key'], unique=False)

    op.create_table('contact_group_members',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_group_members_contact_id')),
    sa.ForeignKeyConstraint(['group_id'], ['contact_groups.id'], name=op.f('fk_contact_group_members_group_id')),
    sa.PrimaryKeyConstraint('group_id', 'contact_id', name=op.f('pk_contact_group_members'))
    )
    with op.batch_alter_table('contact_group_members', schema=None) as batch_op:
        batch_op.create_index('ix_contact_group_members_contact_id', ['contact_id'], unique=False)

    op.create_table('poll_options',
    sa.Column('poll_id', sa.String(length=32), nullable=False),
    sa.Column('option_no', sa.Integer(), nullable=False),
    sa.Column('keyword', sa.String(length=32), nullable=False),
    sa.Column('keyword_key', sa.String(length=128), nullable=False),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['poll_id'], ['polls.id'], name=op.f('fk_poll_options_poll_id')),
    sa.PrimaryKeyConstraint('poll_id', 'option_no', name=op.f('pk_poll_options'))
    )
    op.create_table('poll_votes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('poll_id', sa.String(length=32), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=32), nullable=False),
    sa.Column('option_no', sa.Integer(), nullable=True),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('reply_message_id', sa.String(length=32), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['poll_id'], ['polls.id'], name=op.f('fk_poll_votes_poll_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_poll_votes'))
    )
    with op.batch_alter_table('poll_votes', schema=None) as batch_op:
        batch_op.create_index('ix_poll_votes_poll_id_id', ['poll_id', 'id'], unique=False)
        batch_op.create_index('ix_poll_votes_sender', ['poll_id', 'sender', 'received_at'], unique=False)
        batch_op.create_index('ix_poll_votes_stats', ['poll_id', 'outcome', 'option_no'], unique=False)

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('prefix', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('body', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('route', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_inbound_messages_account_destination', ['account_id', 'destination', 'id'], unique=False)
        batch_op.create_index('ix_inbound_messages_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_inbound_messages_account_received', ['account_id', 'received_at'], unique=False)
        batch_op.create_index('ix_inbound_messages_account_source', ['account_id', 'source', 'id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_inbound_messages_account_id'), 'accounts', ['account_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_inbound_messages_account_id'), type_='foreignkey')
        batch_op.drop_index('ix_inbound_messages_account_source')
        batch_op.drop_index('ix_inbound_messages_account_received')
        batch_op.drop_index('ix_inbound_messages_account_id_id')
        batch_op.drop_index('ix_inbound_messages_account_destination')
        batch_op.drop_column('reason')
        batch_op.drop_column('route')
        batch_op.drop_column('body')
        batch_op.drop_column('prefix')
        batch_op.drop_column('account_id')

    with op.batch_alter_table('poll_votes', schema=None) as batch_op:
        batch_op.drop_index('ix_poll_votes_stats')
        batch_op.drop_index('ix_poll_votes_sender')
        batch_op.drop_index('ix_poll_votes_poll_id_id')

    op.drop_table('poll_votes')
    op.drop_table('poll_options')
    with op.batch_alter_table('contact_group_members', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_group_members_contact_id')

    op.drop_table('contact_group_members')
    with op.batch_alter_table('polls', schema=None) as batch_op:
        batch_op.drop_index('ix_polls_number')
        batch_op.drop_index('ix_polls_account_id_id')

    op.drop_table('polls')
    with op.batch_alter_table('inbound_settings', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_settings_key')

    op.drop_table('inbound_settings')
    with op.batch_alter_table('inbound_reservations', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_reservations_number')
        batch_op.drop_index('ix_inbound_reservations_account')

    op.drop_table('inbound_reservations')
    with op.batch_alter_table('inbound_replies', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_replies_recipient')

    op.drop_table('inbound_replies')
    with op.batch_alter_table('inbound_forwards', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_forwards_pending', sqlite_where=sa.text("state = 'pending'"), postgresql_where=sa.text("state = 'pending'"))

    op.drop_table('inbound_forwards')
    with op.batch_alter_table('discount_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_discount_codes_free', sqlite_where=sa.text('vote_id IS NULL'), postgresql_where=sa.text('vote_id IS NULL'))
        batch_op.drop_index('ix_discount_codes_account_pool_code')

    op.drop_table('discount_codes')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_account_phone')

    op.drop_table('contacts')
    with op.batch_alter_table('contact_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_groups_account_name')

    op.drop_table('contact_groups')
