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
    Column("ref_id", String(256), nullable=True),  # up to 256 bytes of UTF-8
    Column("params", Text, nullable=True),  # JSON object, as the customer sent it
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("submitted_at", DateTime, nullable=True),
    Column("final_at", DateTime, nullable=True),
    # Reports (issue 10): how it came in (api | job | portal), which credential sent it,
    # and the customer's own end-customer id.
    Column("channel", String(8), nullable=False, server_default=text("'api'")),
    Column("sent_by", String(128), nullable=True),  # a portal login or "token:<fingerprint>"
    Column("partner", String(64), nullable=True),
    # Callbacks (issue 12): the endpoint the message named (None: the account's
    # default endpoint at the time of each event).
    Column("callback_id", String(32), nullable=True),
    # Several instances on one PostgreSQL database (issue 14): the instance whose
    # dispatcher holds this queued message (smppd.store.leases). NULL: nobody's yet,
    # and always on SQLite (one instance).
    Column("lease_owner", String(64), nullable=True),
)
# History pages and filters, per account, newest first.
Index("ix_messages_account_id_id", messages.c.account_id, messages.c.id)
Index("ix_messages_account_recipient", messages.c.account_id, messages.c.recipient,
      messages.c.id)
Index("ix_messages_account_sender", messages.c.account_id, messages.c.sender, messages.c.id)
Index("ix_messages_account_status", messages.c.account_id, messages.c.status, messages.c.id)
Index("ix_messages_account_partner", messages.c.account_id, messages.c.partner, messages.c.id,
      sqlite_where=messages.c.partner.isnot(None),
      postgresql_where=messages.c.partner.isnot(None))
# Partial: messages sent one by one through the API (no job) cost it nothing.
Index("ix_messages_account_job", messages.c.account_id, messages.c.job_id, messages.c.id,
      sqlite_where=messages.c.job_id.isnot(None),
      postgresql_where=messages.c.job_id.isnot(None))
# Lookups by the customer's own reference or end-customer id (issue 10). Partial: a
# message without one costs no index entry.
Index("ix_messages_account_ref_id", messages.c.account_id, messages.c.ref_id, messages.c.id,
      sqlite_where=messages.c.ref_id.isnot(None), postgresql_where=messages.c.ref_id.isnot(None))
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
    Column("description", String(256), nullable=True),  # issue 10: for finding it again
    Column("campaign_id", String(32), nullable=True),  # issue 10: grouped into a campaign
    # Issue 12: what every message of the job carries unless its row says otherwise.
    Column("ref_id", String(256), nullable=True),
    Column("params", Text, nullable=True),
    Column("partner", String(64), nullable=True),
    Column("callback_id", String(32), nullable=True),
    Column("shorten_links", Boolean, nullable=False, server_default=text("false")),
    Column("channel", String(8), nullable=True),  # api | portal (issue 15)
    Column("sent_by", String(128), nullable=True),  # a portal login or "token:<fingerprint>"
)
Index("ix_jobs_account_id_id", jobs.c.account_id, jobs.c.id)
Index("ix_jobs_account_campaign", jobs.c.account_id, jobs.c.campaign_id,
      sqlite_where=jobs.c.campaign_id.isnot(None),
      postgresql_where=jobs.c.campaign_id.isnot(None))

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

# Idempotency-Key: the answer given to a POST that carried one, so that a retry with
# the same key gets that answer instead of making a second message or job. Written
# in the transaction that commits the message (or the job's last batch); kept 24 h.
idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # sha256 of what was asked
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),  # the JSON body answered
    Column("created_at", DateTime, nullable=False),
)
Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)


# Reports (issue 10) ---------------------------------------------------------------------

# What the messages table would say if counted, kept per account, per 15 minutes of
# UTC, per status and error: the writer changes these rows in the same transaction as
# the messages (smppd.store.rollups), so a daily report over ten million messages sums
# a few thousand rows instead of scanning them. `bucket` is the Unix time of the slot's
# start (the time in the message id, see smppd.ids); `error` is '' for none (a key
# column cannot be NULL in PostgreSQL). Why 15 minutes: every time zone in use is a
# whole number of quarter hours from UTC (India +5:30, Nepal +5:45), so any account's
# days are cut exactly, whatever its zone is or becomes.
message_rollups = Table(
    "message_rollups", metadata,
    Column("account_id", Integer, primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("status", String(12), primary_key=True),
    Column("error", String(32), primary_key=True),
    Column("messages", BigInteger, nullable=False),
    Column("parts", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False),
)

# A named group of jobs (a campaign), so their report can be read as one.
campaigns = Table(
    "campaigns", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("description", String(1024), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
Index("ix_campaigns_account_id_id", campaigns.c.account_id, campaigns.c.id)

# One requested report: its request, its state while it runs, its file once ready.
# `run_key` (schedule id + period start) is unique: a periodic run makes one report
# even when two daemons, or one restarted, try to make it twice. `lease_until` is how
# long the daemon running it may be trusted to be alive (renewed as it progresses):
# past it, any daemon may take the report over and run it again.
reports = Table(
    "reports", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("type", String(16), nullable=False),
    Column("format", String(8), nullable=False),
    Column("name", String(128), nullable=True),
    Column("request", Text, nullable=False),  # JSON: the validated request
    Column("period_start", DateTime, nullable=True),  # UTC
    Column("period_end", DateTime, nullable=True),  # UTC, exclusive
    Column("timezone", String(64), nullable=False),
    Column("state", String(8), nullable=False),  # queued | running | ready | failed
    Column("progress", Float, nullable=False, server_default=text("0")),
    Column("rows", BigInteger, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=True),
    Column("file_name", String(255), nullable=True),
    Column("file_path", Text, nullable=True),
    Column("file_size", BigInteger, nullable=True),
    Column("content_type", String(128), nullable=True),
    Column("email", Text, nullable=True),  # JSON list of addresses
    Column("email_state", String(8), nullable=True),  # pending | sent | failed
    Column("email_attempts", Integer, nullable=False, server_default=text("0")),
    Column("email_error", Text, nullable=True),
    Column("email_next_at", DateTime, nullable=True),
    Column("schedule_id", String(32), nullable=True),
    Column("run_key", String(96), nullable=True, unique=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("owner", String(160), nullable=True),  # the daemon running it (host + config)
    Column("lease_until", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("finished_at", DateTime, nullable=True),
    Column("expires_at", DateTime, nullable=True),
)
Index("ix_reports_account_id_id", reports.c.account_id, reports.c.id)
Index("ix_reports_state", reports.c.state)

# A periodic report: every day, week or month, for the period that just ended in the
# account's time zone. `next_run` is UTC.
report_schedules = Table(
    "report_schedules", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("every", String(8), nullable=False),  # day | week | month
    Column("request", Text, nullable=False),  # JSON: the report fields but the period
    Column("next_run", DateTime, nullable=False),
    Column("last_run", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
)
Index("ix_report_schedules_account_id_id", report_schedules.c.account_id,
      report_schedules.c.id)
Index("ix_report_schedules_next_run", report_schedules.c.next_run)

# Callbacks and links (issue 12) -------------------------------------------------------

# A customer's URL for events. Soft-deleted, so that an old message naming it finds it
# gone rather than another account's endpoint reusing the id.
callback_endpoints = Table(
    "callback_endpoints", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("on_status", Boolean, nullable=False),  # every status change
    Column("on_final", Boolean, nullable=False),  # final statuses only
    Column("on_inbound", Boolean, nullable=False),  # MO messages
    Column("is_default", Boolean, nullable=False),
    Column("secret", String(128), nullable=False),  # whsec_...: signs each delivery
    Column("created_at", DateTime, nullable=False),
    Column("deleted_at", DateTime, nullable=True),
)
Index("ix_callback_endpoints_account_id_id", callback_endpoints.c.account_id,
      callback_endpoints.c.id)

# The account's own signing key, for events sent to a URL that is not a registered
# endpoint (an MO forwarded to a URL).
webhook_secrets = Table(
    "webhook_secrets", metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# The outbox: one row per event and target, written in the transaction that caused
# it; `id` is the event id (webhook-id), the receiver's idempotency key.
callback_events = Table(
    "callback_events", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("account_id", Integer, nullable=False),
    Column("target", String(64), nullable=False),  # endpoint id, or "u" + hash of the URL
    Column("url", Text, nullable=True),  # only for a URL that is not an endpoint
    Column("type", String(24), nullable=False),
    Column("message_id", String(32), nullable=True),
    Column("status", String(12), nullable=True),
    Column("error_code", String(32), nullable=True),
    Column("data", Text, nullable=True),  # JSON, for events that are not a message's
    Column("at", DateTime, nullable=False),
    Column("state", String(10), nullable=False),  # pending | delivered | failed | cancelled
    Column("attempts", Integer, nullable=False),
    Column("next_at", DateTime, nullable=False),
    Column("last_error", String(256), nullable=True),
    Column("last_status", Integer, nullable=True),  # the receiver's HTTP status
    Column("finished_at", DateTime, nullable=True),
)
# What is due: partial, so it is as small as the backlog.
Index("ix_callback_events_due", callback_events.c.next_at,
      sqlite_where=callback_events.c.state == "pending",
      postgresql_where=callback_events.c.state == "pending")
Index("ix_callback_events_target_state_seq", callback_events.c.target,
      callback_events.c.state, callback_events.c.seq)

# One row per short link: a code, unique per recipient message and URL in it.
links = Table(
    "links", metadata,
    Column("code", String(16), primary_key=True),
    Column("message_id", String(32), nullable=False),
    Column("account_id", Integer, nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("url", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("clicks", Integer, nullable=False, server_default=text("0")),
    Column("first_click_at", DateTime, nullable=True),
)
Index("ix_links_message_id", links.c.message_id)

link_clicks = Table(
    "link_clicks", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("code", String(16), nullable=False),
    Column("message_id", String(32), nullable=False),
    Column("account_id", Integer, nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("at", DateTime, nullable=False),
    Column("agent", String(8), nullable=False),  # mobile | tablet | desktop | bot | other
    Column("is_repeat", Boolean, nullable=False),
)
Index("ix_link_clicks_message_id", link_clicks.c.message_id)
Index("ix_link_clicks_job_id", link_clicks.c.job_id, link_clicks.c.message_id,
      sqlite_where=link_clicks.c.job_id.isnot(None),
      postgresql_where=link_clicks.c.job_id.isnot(None))
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

# --- Several instances on one database (issue 14) -----------------------------------------
# One row per running smppd: its heartbeat keeps `lease_until` ahead, and every
# message it leased (messages.lease_owner) is its own while that lies in the future.
# A dead instance's row just expires; its messages go back to the queue with it.
instances = Table(
    "instances", metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),
    Column("lease_until", DateTime, nullable=False),
    Column("smscs", Text, nullable=True),  # JSON list of the SMSCs it is bound to
    # Its last heartbeat's place in the order of all heartbeats (smppd.store.instances).
    Column("beat", BigInteger, nullable=True),
)

# Work that must run on one instance at a time (sweepers, schedules, the callback
# drainer): whoever holds the row's unexpired lease runs it.
cluster_duties = Table(
    "cluster_duties", metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(64), nullable=True),
    Column("lease_until", DateTime, nullable=True),
)

# One row: the writers' turn at the messages in progress. A batch that settles
# outcomes bumps it first (the row lock orders such batches across instances), and
# a writer that finds another took a turn since its own forgets its cached states.
writer_epoch = Table(
    "writer_epoch", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
    Column("writer", String(64), nullable=True),
)

# One row per turn taken (smppd.store.epoch): what that turn's batch changed, as JSON
# ({"m": message ids, "k": [smsc, SMSC id] pairs it stored}), so that the next writer
# to take a turn forgets only those instead of all it knows. NULL: too many to list
# (everything is forgotten). Pruned by epoch.
writer_touches = Table(
    "writer_touches", metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("writer", String(64), nullable=True),
    Column("changes", Text, nullable=True),
)
