"""The tables. Core, not ORM: the write path is bulk statements over plain tuples,
and an ORM's per-object bookkeeping would cost more than the SMPP work itself.

Message ids are time-ordered (see smppd.ids), so "newest first" pages and date
ranges of one account walk the (account_id, id) index without a sort.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from ..status import Status

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
})

accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("balance", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

messages = Table(
    "messages", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("sender", String(16), nullable=False),
    Column("recipient", String(16), nullable=False),  # E.164 digits, no '+'
    Column("country", String(2), nullable=True),  # ISO 3166 region, for reports
    Column("text", Text, nullable=False),
    Column("encoding", String(8), nullable=False),
    Column("parts", Integer, nullable=False),
    Column("points", Integer, nullable=False),
    Column("refunded", Integer, nullable=False, server_default=text("0")),
    Column("concat_ref", Integer, nullable=False),  # kept so a resend rebuilds equal parts
    Column("status", String(12), nullable=False),
    Column("smsc", String(64), nullable=True),  # route chosen at accept time, if any
    Column("error_code", String(32), nullable=True),
    Column("ref_id", String(128), nullable=True),
    Column("params", Text, nullable=True),  # JSON object, as the customer sent it
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("submitted_at", DateTime, nullable=True),
    Column("final_at", DateTime, nullable=True),
    # Who sent it (issue 15; the reports branch adds the same two columns, same names and
    # types): `channel` api | job | portal, `sent_by` a portal login or "token:<fingerprint>".
    Column("channel", String(8), nullable=True),
    Column("sent_by", String(128), nullable=True),
)
# History pages and filters, per account, newest first.
Index("ix_messages_account_id_id", messages.c.account_id, messages.c.id)
Index("ix_messages_account_recipient", messages.c.account_id, messages.c.recipient,
      messages.c.id)
Index("ix_messages_account_sender", messages.c.account_id, messages.c.sender, messages.c.id)
Index("ix_messages_account_status", messages.c.account_id, messages.c.status, messages.c.id)
# The portal's history finds a message by the customer's own reference (issue 15).
Index("ix_messages_account_ref_id", messages.c.account_id, messages.c.ref_id, messages.c.id,
      sqlite_where=messages.c.ref_id.isnot(None),
      postgresql_where=messages.c.ref_id.isnot(None))
# Partial: messages sent one by one through the API (no job) cost it nothing.
Index("ix_messages_account_job", messages.c.account_id, messages.c.job_id, messages.c.id,
      sqlite_where=messages.c.job_id.isnot(None),
      postgresql_where=messages.c.job_id.isnot(None))
# Recovery at start: the work that is still to be sent. Partial, so the index stays
# as small as the backlog and costs nothing once messages move on.
Index("ix_messages_queued", messages.c.id,
      sqlite_where=messages.c.status == Status.QUEUED.value,
      postgresql_where=messages.c.status == Status.QUEUED.value)

# Every change of a balance that is not a message's own charge or refund (those
# live on the message row: points, refunded): top-ups, fees, corrections. The
# balance column is the running total; this table is the why.
ledger_entries = Table(
    "ledger_entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(32), nullable=False),  # topup | fee | correction | ...
    Column("points", BigInteger, nullable=False),  # signed: + credits, - debits
    Column("balance_after", BigInteger, nullable=False),
    Column("reference", String(128), nullable=True),  # what it is for (a number, a period)
    Column("note", Text, nullable=True),
    Column("created_by", String(128), nullable=True),  # operator, user or "system"
    Column("created_at", DateTime, nullable=False),
)
Index("ix_ledger_entries_account_id_id", ledger_entries.c.account_id, ledger_entries.c.id)

# A bulk job: its messages carry its id. States: scheduled, running, paused,
# stopped, completed (DESIGN.md).
jobs = Table(
    "jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("sender", String(16), nullable=False),
    Column("text", Text, nullable=False),  # the template, {field} placeholders unfilled
    Column("state", String(12), nullable=False),
    Column("throughput", Float, nullable=True),  # the job's own cap, messages per second
    Column("start_at", DateTime, nullable=True),
    Column("recipients", Integer, nullable=False),  # messages created
    Column("rejected_rows", Integer, nullable=False),  # rows refused at creation
    Column("row_errors", Text, nullable=True),  # JSON: the first refused rows, with reasons
    Column("points", BigInteger, nullable=False),  # charged at creation
    Column("refunded", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("channel", String(8), nullable=True),  # api | portal (issue 15)
    Column("sent_by", String(128), nullable=True),  # a portal login or "token:<fingerprint>"
)
Index("ix_jobs_account_id_id", jobs.c.account_id, jobs.c.id)

parts = Table(
    "parts", metadata,
    Column("message_id", String(32), ForeignKey("messages.id"), primary_key=True),
    Column("part_no", Integer, primary_key=True),  # 1-based
    Column("smsc", String(64), nullable=True),
    Column("smsc_id", String(64), nullable=True),  # exactly as the SMSC wrote it
    Column("smsc_key", String(64), nullable=True),  # normalised by the SMSC's id policy
    Column("status", String(12), nullable=False),
    Column("error_code", String(32), nullable=True),
    Column("submitted_at", DateTime, nullable=True),
    Column("updated_at", DateTime, nullable=False),
)
# Receipt matching: one lookup per receipt by the SMSC's id.
Index("ix_parts_smsc_key", parts.c.smsc, parts.c.smsc_key)

# Status changes after acceptance (the `queued` state is the message row itself).
message_events = Table(
    "message_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(32), nullable=False),
    Column("part_no", Integer, nullable=True),  # None: the message as a whole
    Column("status", String(12), nullable=False),
    Column("error_code", String(32), nullable=True),
    Column("at", DateTime, nullable=False),
)
Index("ix_message_events_message_id", message_events.c.message_id)

# A receipt whose id is not known yet (it came before submit_sm_resp was stored).
pending_receipts = Table(
    "pending_receipts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("smsc", String(64), nullable=False),
    Column("smsc_key", String(64), nullable=False),
    Column("status", String(12), nullable=False),
    Column("error_code", String(32), nullable=True),
    Column("received_at", DateTime, nullable=False),
    # True: smsc_key is the id as the receipt carried it (canonical), to be read once
    # the SMSC's reading is learnt; `source` says which of its ids it was.
    Column("needs_reading", Boolean, nullable=False, server_default=text("false")),
    Column("source", String(8), nullable=True),
)
Index("ix_pending_receipts_smsc_key", pending_receipts.c.smsc, pending_receipts.c.smsc_key)

# More SMSC ids for a part than the one on its row: a late response to an attempt
# that was resent. A receipt for either attempt settles the part.
part_aliases = Table(
    "part_aliases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("smsc", String(64), nullable=False),
    Column("smsc_key", String(64), nullable=False),
    Column("message_id", String(32), nullable=False),
    Column("part_no", Integer, nullable=False),
)
Index("ix_part_aliases_smsc_key", part_aliases.c.smsc, part_aliases.c.smsc_key)

# How an SMSC's receipt ids read, once learnt (id_format: auto), per source.
smsc_id_modes = Table(
    "smsc_id_modes", metadata,
    Column("smsc", String(64), primary_key=True),
    Column("source", String(8), primary_key=True),  # tlv | text
    Column("reading", String(16), nullable=False),  # same | dec-to-hex | hex-to-dec
    Column("learned_at", DateTime, nullable=False),
)

# Inbound (MO): each fragment is written before its deliver_sm_resp, so a restart
# between parts still completes the message.
inbound_fragments = Table(
    "inbound_fragments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("smsc", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("destination", String(32), nullable=False),
    Column("data_coding", Integer, nullable=False),
    Column("reference", Integer, nullable=True),
    Column("total", Integer, nullable=True),
    Column("number", Integer, nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("tlvs", Text, nullable=True),
    Column("dedupe_key", String(64), nullable=False),
    Column("inbound_id", Integer, nullable=True),  # set once assembled; kept for dedupe
    Column("received_at", DateTime, nullable=False),
)
Index("ix_inbound_fragments_dedupe_key", inbound_fragments.c.dedupe_key)

inbound_messages = Table(
    "inbound_messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("smsc", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("destination", String(32), nullable=False),
    Column("data_coding", Integer, nullable=False),
    Column("text", Text, nullable=True),  # None for binary content
    Column("payload", LargeBinary, nullable=False),
    Column("parts", Integer, nullable=False),
    Column("tlvs", Text, nullable=True),  # vendor TLVs as JSON [[tag, hex], ...]
    Column("received_at", DateTime, nullable=False),
    # Routing (issue 11), decided in the transaction that stores the message. No
    # account: `unassigned`, kept for the operator with the reason.
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=True),
    Column("prefix", String(16), nullable=True),  # the matched first word, as sent
    Column("body", Text, nullable=True),  # the text after the prefix
    Column("route", String(16), nullable=True),  # dedicated|shared|shortcode|unassigned
    Column("reason", String(32), nullable=True),  # why unassigned (or `loop`)
)
Index("ix_inbound_messages_destination", inbound_messages.c.destination,
      inbound_messages.c.received_at)
Index("ix_inbound_messages_account_id_id", inbound_messages.c.account_id,
      inbound_messages.c.id)
Index("ix_inbound_messages_account_destination", inbound_messages.c.account_id,
      inbound_messages.c.destination, inbound_messages.c.id)
Index("ix_inbound_messages_account_source", inbound_messages.c.account_id,
      inbound_messages.c.source, inbound_messages.c.id)
Index("ix_inbound_messages_account_received", inbound_messages.c.account_id,
      inbound_messages.c.received_at)

# --- Inbound numbers, routing, contacts and polls (issue 11) ---------------------------
# Who holds a number of the operator's pool (config `inbound_numbers`) and when. A
# dedicated number has one holder (prefix_key ''); a shared number has one holder per
# prefix. `prefix_key` is the prefix folded (case and diacritics) as MO text is matched.
inbound_reservations = Table(
    "inbound_reservations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("number", String(16), nullable=False),  # digits, no '+'
    Column("prefix", String(16), nullable=True),  # as the customer wrote it
    Column("prefix_key", String(64), nullable=False),  # '' for the whole number
    Column("starts_at", DateTime, nullable=False),
    Column("ends_at", DateTime, nullable=True),  # None: until released
    Column("paid_until", DateTime, nullable=True),  # monthly fee charged up to here
    Column("released_at", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
)
Index("ix_inbound_reservations_number", inbound_reservations.c.number,
      inbound_reservations.c.prefix_key)
Index("ix_inbound_reservations_account", inbound_reservations.c.account_id,
      inbound_reservations.c.number)

# Auto-reply and forwarding per number and prefix ('' = the whole number).
inbound_settings = Table(
    "inbound_settings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("number", String(16), nullable=False),
    Column("prefix_key", String(64), nullable=False),
    Column("prefix", String(16), nullable=True),
    Column("auto_reply_from", String(16), nullable=True),
    Column("auto_reply_text", Text, nullable=True),
    Column("forward_email", Text, nullable=True),  # JSON list
    Column("forward_sms", Text, nullable=True),  # JSON list of E.164 digits
    Column("forward_url", Text, nullable=True),  # delivered by the webhook outbox
    Column("updated_at", DateTime, nullable=False),
)
Index("ix_inbound_settings_key", inbound_settings.c.account_id, inbound_settings.c.number,
      inbound_settings.c.prefix_key, unique=True)

# Every MT smppd sends by itself because of an MO (auto-reply, poll reply, SMS
# forward): the per-sender hourly limit and loop refusal read it.
inbound_replies = Table(
    "inbound_replies", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("inbound_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # auto_reply | poll | forward
    Column("recipient", String(32), nullable=False),
    Column("message_id", String(32), nullable=True),  # None: refused (balance, route)
    Column("created_at", DateTime, nullable=False),
)
Index("ix_inbound_replies_recipient", inbound_replies.c.recipient, inbound_replies.c.created_at)

# E-mail copies of MO messages, written with the message and sent by the daemon
# afterwards: a restart resends what was pending, with the same Message-ID.
inbound_forwards = Table(
    "inbound_forwards", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("inbound_id", Integer, nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list of addresses
    Column("state", String(12), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime, nullable=True),
)
Index("ix_inbound_forwards_pending", inbound_forwards.c.next_attempt_at,
      sqlite_where=inbound_forwards.c.state == "pending",
      postgresql_where=inbound_forwards.c.state == "pending")

contacts = Table(
    "contacts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("phone", String(16), nullable=False),  # E.164 digits, no '+'
    Column("first_name", String(64), nullable=True),
    Column("last_name", String(64), nullable=True),
    Column("email", String(254), nullable=True),
    Column("fields", Text, nullable=True),  # JSON object of custom fields
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
Index("ix_contacts_account_phone", contacts.c.account_id, contacts.c.phone, unique=True)

contact_groups = Table(
    "contact_groups", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("name", String(64), nullable=False),
)
Index("ix_contact_groups_account_name", contact_groups.c.account_id, contact_groups.c.name,
      unique=True)

contact_group_members = Table(
    "contact_group_members", metadata,
    Column("group_id", Integer, ForeignKey("contact_groups.id"), primary_key=True),
    Column("contact_id", Integer, ForeignKey("contacts.id"), primary_key=True),
)
Index("ix_contact_group_members_contact_id", contact_group_members.c.contact_id)

discount_codes = Table(
    "discount_codes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("pool", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("vote_id", String(32), nullable=True),  # given with this vote; never twice
    Column("given_at", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
)
Index("ix_discount_codes_account_pool_code", discount_codes.c.account_id,
      discount_codes.c.pool, discount_codes.c.code, unique=True)
# The next free code of a pool: partial, so it shrinks as codes are given out.
Index("ix_discount_codes_free", discount_codes.c.account_id, discount_codes.c.pool,
      discount_codes.c.id, sqlite_where=discount_codes.c.vote_id.is_(None),
      postgresql_where=discount_codes.c.vote_id.is_(None))

polls = Table(
    "polls", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("number", String(16), nullable=False),
    Column("prefix", String(16), nullable=True),
    Column("prefix_key", String(64), nullable=False),  # '' without a prefix
    Column("starts_at", DateTime, nullable=False),
    Column("ends_at", DateTime, nullable=False),  # exclusive: [starts_at, ends_at)
    Column("sender", String(16), nullable=False),
    Column("replies", Text, nullable=False),  # JSON {default, out_of_window, ...}
    Column("limit_votes", Integer, nullable=False),  # 0: unlimited
    Column("limit_seconds", Integer, nullable=True),  # None: over the whole poll
    Column("groups", Text, nullable=True),  # JSON list of contact group names
    Column("discount_pool", String(64), nullable=True),
    Column("created_at", DateTime, nullable=False),
)
Index("ix_polls_number", polls.c.number, polls.c.prefix_key)
Index("ix_polls_account_id_id", polls.c.account_id, polls.c.id)

poll_options = Table(
    "poll_options", metadata,
    Column("poll_id", String(32), ForeignKey("polls.id"), primary_key=True),
    Column("option_no", Integer, primary_key=True),  # 1-based, in the order given
    Column("keyword", String(32), nullable=False),
    Column("keyword_key", String(128), nullable=False),
    Column("reply", Text, nullable=True),
)

# Every vote with its outcome: accepted | out_of_window | over_limit | not_allowed |
# unknown_option. Stats are GROUP BY over the first index, which covers them.
poll_votes = Table(
    "poll_votes", metadata,
    Column("id", String(32), primary_key=True),
    Column("poll_id", String(32), ForeignKey("polls.id"), nullable=False),
    Column("inbound_id", Integer, nullable=False),
    Column("sender", String(32), nullable=False),
    Column("option_no", Integer, nullable=True),
    Column("answer", Text, nullable=True),  # the text after the prefix
    Column("outcome", String(16), nullable=False),
    Column("code", String(64), nullable=True),
    Column("reply_message_id", String(32), nullable=True),
    Column("received_at", DateTime, nullable=False),
)
Index("ix_poll_votes_stats", poll_votes.c.poll_id, poll_votes.c.outcome,
      poll_votes.c.option_no)
Index("ix_poll_votes_sender", poll_votes.c.poll_id, poll_votes.c.sender,
      poll_votes.c.received_at)
Index("ix_poll_votes_poll_id_id", poll_votes.c.poll_id, poll_votes.c.id)

# --- Portal and console (issue 15) -------------------------------------------------------
# An account's people: a login (unique across accounts: the login form asks nothing
# else), an argon2 hash, a role (owner | sender | viewer) and a language.
portal_users = Table(
    "portal_users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("login", String(128), nullable=False),
    Column("email", String(254), nullable=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(8), nullable=False),
    Column("must_change_password", Boolean, nullable=False),  # a one-time password
    Column("locale", String(8), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("created_by", String(128), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("last_login_at", DateTime, nullable=True),
)
Index("ix_portal_users_login", portal_users.c.login, unique=True)
Index("ix_portal_users_account_id", portal_users.c.account_id, portal_users.c.id)

# Signed-in sessions, server side so they survive a restart and can be ended. The key
# is the SHA-256 of the cookie's value: the table alone opens no session.
portal_sessions = Table(
    "portal_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),  # user | operator
    Column("user_id", Integer, nullable=True),
    Column("operator", String(128), nullable=True),
    Column("csrf", String(64), nullable=False),
    Column("address", String(64), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen_at", DateTime, nullable=False),
)
Index("ix_portal_sessions_user_id", portal_sessions.c.user_id)
