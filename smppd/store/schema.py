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
    # Issue 12 (callbacks and links): the end customer, and the callback endpoint the
    # message named (None: the account's default endpoint at the time of each event).
    Column("partner", String(64), nullable=True),
    Column("callback_id", String(32), nullable=True),
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
# Recovery at start: the work that is still to be sent. Partial, so the index stays
# as small as the backlog and costs nothing once messages move on.
Index("ix_messages_queued", messages.c.id,
      sqlite_where=messages.c.status == "queued", postgresql_where=messages.c.status == "queued")

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
    # Issue 12: what every message of the job carries unless its row says otherwise.
    Column("ref_id", String(256), nullable=True),
    Column("params", Text, nullable=True),
    Column("partner", String(64), nullable=True),
    Column("callback_id", String(32), nullable=True),
    Column("shorten_links", Boolean, nullable=False, server_default=text("false")),
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
)
Index("ix_pending_receipts_smsc_key", pending_receipts.c.smsc, pending_receipts.c.smsc_key)

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
)
Index("ix_inbound_messages_destination", inbound_messages.c.destination,
      inbound_messages.c.received_at)

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
