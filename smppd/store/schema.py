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
    # Reports (issue 10): how it came in (api | job | portal), which credential sent it,
    # and the customer's own end-customer id.
    Column("channel", String(8), nullable=False, server_default=text("'api'")),
    Column("sent_by", String(64), nullable=True),
    Column("partner", String(64), nullable=True),
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
# Lookups by the customer's own reference or end-customer id (issue 10). Partial: a
# message without one costs no index entry.
Index("ix_messages_account_ref_id", messages.c.account_id, messages.c.ref_id, messages.c.id,
      sqlite_where=messages.c.ref_id.isnot(None), postgresql_where=messages.c.ref_id.isnot(None))
Index("ix_messages_account_partner", messages.c.account_id, messages.c.partner, messages.c.id,
      sqlite_where=messages.c.partner.isnot(None),
      postgresql_where=messages.c.partner.isnot(None))
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
    Column("description", String(256), nullable=True),  # issue 10: for finding it again
    Column("campaign_id", String(32), nullable=True),  # issue 10: grouped into a campaign
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
