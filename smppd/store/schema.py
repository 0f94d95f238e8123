"""The tables. Core, not ORM: the write path is bulk statements over plain tuples,
and an ORM's per-object bookkeeping would cost more than the SMPP work itself.

Message ids are time-ordered (see smppd.ids), so "newest first" pages and date
ranges of one account walk the (account_id, id) index without a sort.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
    Column("ref_id", String(128), nullable=True),
    Column("params", Text, nullable=True),  # JSON object, as the customer sent it
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("submitted_at", DateTime, nullable=True),
    Column("final_at", DateTime, nullable=True),
)
# History pages and filters, per account, newest first.
Index("ix_messages_account_id_id", messages.c.account_id, messages.c.id)
Index("ix_messages_account_recipient", messages.c.account_id, messages.c.recipient,
      messages.c.id)
Index("ix_messages_account_sender", messages.c.account_id, messages.c.sender, messages.c.id)
Index("ix_messages_account_status", messages.c.account_id, messages.c.status, messages.c.id)
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
