"""What the daemon asks the store to record. Plain records: made on the reactor
thread, applied in batches on the writer thread (smppd.store.batch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Accept:
    """A new message from the API: charge the account, store it `queued`."""

    account_id: int
    message_id: str
    sender: str
    recipient: str
    country: str | None
    text: str
    encoding: str
    parts: int
    points: int
    concat_ref: int
    smsc: str | None
    ref_id: str | None
    params: str | None
    created_at: float
    job_id: str | None = None
    # Issue 10: api | job | portal (None: job when job_id is set, else api), the
    # credential that sent it, and the customer's end-customer id.
    channel: str | None = None
    sent_by: str | None = None
    partner: str | None = None
    retry = False  # the HTTP client retries; the daemon must not hold its answer


@dataclass(slots=True)
class PartSubmitted:
    message_id: str
    part_no: int
    smsc: str
    smsc_id: str
    smsc_key: str
    retry = True  # a fact from the SMSC: keep trying until it is stored


@dataclass(slots=True)
class PartFailed:
    """A permanent error (or retries exhausted): the message fails and is refunded
    for every part the SMSC never accepted."""

    message_id: str
    part_no: int
    smsc: str | None
    status: str  # rejected | failed
    error_code: str
    retry = True


@dataclass(slots=True)
class PartUnknown:
    """No response came: the part may have been sent. Not resent, not refunded."""

    message_id: str
    part_no: int
    smsc: str
    reason: str
    retry = True


@dataclass(slots=True)
class LateId:
    """A response that came after its timeout: keep the id so a receipt can settle it."""

    message_id: str
    part_no: int
    smsc: str
    smsc_id: str
    smsc_key: str
    status: int
    retry = True


@dataclass(slots=True)
class ReceiptSeen:
    smsc: str
    smsc_key: str
    status: str
    error_code: str | None
    retry = False  # unanswered deliver_sm: the SMSC redelivers


@dataclass(slots=True)
class FragmentSeen:
    """One inbound deliver_sm (an MO or one part of one). Result: the row id, or
    None when it is a redelivery of one already kept."""

    smsc: str
    source: str
    destination: str
    data_coding: int
    reference: int | None
    total: int | None
    number: int | None
    payload: bytes
    tlvs: str | None
    dedupe_key: str
    retry = False


@dataclass(slots=True)
class InboundComplete:
    """All fragments of an MO are kept: store the message and link its fragments."""

    smsc: str
    source: str
    destination: str
    data_coding: int
    text: str | None
    payload: bytes
    parts: int
    tlvs: str | None
    fragment_ids: list[int] = field(default_factory=list)
    retry = True


@dataclass(slots=True)
class CreateJob:
    """A bulk job and one batch of its messages. The first batch creates the job in
    state `creating` (invisible to the dispatcher); later batches add to it; each is
    charged on its own, and one the balance cannot pay for is refused whole
    (InsufficientBalance), after which the caller aborts the job (AbortJob). A big
    job thus streams into the store without being held in memory."""

    account_id: int
    job_id: str
    name: str
    sender: str
    text: str
    throughput: float | None
    start_at: float | None
    messages: list[Accept]
    created_at: float
    description: str | None = None  # issue 10
    retry = False


@dataclass(slots=True)
class PurgePending:
    """Forget receipts that never found their message (ids from before smppd's time,
    or an SMSC's mistake) once they are older than `max_age` seconds. Result: rows."""

    max_age: float
    retry = False


@dataclass(slots=True)
class Warm:
    """Messages about to be sent (a job's next page): the writer learns their state
    now, so their outcomes need no read. Rows: (id, account, points, smsc, parts)."""

    messages: list[tuple[str, int, int, str | None, int]]
    retry = False


@dataclass(slots=True)
class FinishJob:
    """Every batch is in: the job becomes running or scheduled."""

    job_id: str
    state: str
    rejected_rows: int
    row_errors: str | None
    retry = False


@dataclass(slots=True)
class AbortJob:
    """Undo a job being created (no money, or a crash halfway): its messages are
    deleted and what they were charged goes back. Result: points refunded."""

    job_id: str
    retry = False


@dataclass(slots=True)
class SetJobState:
    """pause / resume / complete / start a scheduled job. Result: the state now."""

    job_id: str
    account_id: int
    state: str
    allowed_from: tuple[str, ...]
    retry = False


@dataclass(slots=True)
class StopJob:
    """Cancel every message of the job not yet (even partly) sent, refund them, in
    one transaction. `in_flight` are ids the dispatcher is sending right now.
    Result: (cancelled messages, points refunded)."""

    job_id: str
    account_id: int
    in_flight: frozenset[str]
    retry = False


@dataclass(slots=True)
class LedgerEntry:
    """A balance change with its reason (a top-up, a fee, a correction), recorded in
    the ledger in the same transaction. A debit the balance cannot cover is refused
    (InsufficientBalance) unless `allow_negative`. Result: the balance after."""

    account_id: int
    kind: str
    points: int  # signed: + credit, - debit
    reference: str | None = None
    note: str | None = None
    created_by: str | None = None
    allow_negative: bool = False
    retry = False


Operation = (Accept | LedgerEntry | CreateJob | Warm | PurgePending | FinishJob | AbortJob
             | SetJobState | StopJob | PartSubmitted | PartFailed | PartUnknown | LateId
             | ReceiptSeen | FragmentSeen | InboundComplete)


class InsufficientBalance(Exception):
    """The account cannot pay for the message; nothing was stored."""

    def __init__(self, needed: int, balance: int) -> None:
        super().__init__(f"needs {needed} points, the balance is {balance}")
        self.needed = needed
        self.balance = balance


def describe(op: Any) -> str:
    message = getattr(op, "message_id", None)
    return f"{type(op).__name__}" + (f" message={message}" if message else "")
