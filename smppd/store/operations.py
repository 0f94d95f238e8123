"""What the daemon asks the store to record: frozen records, made on the reactor
thread and applied in batches on the writer thread (smppd.store.batch).

Frozen, because an operation crosses threads: once `put` it must not change under
the writer. Values a peer wrote (an SMSC's message id, a vendor's `err:` text, an
MO address) are cut to their columns when the operation is built: the codec reads
fields as long as the peer sent them, PostgreSQL refuses an over-long value, and an
uncut value would fail its write and the SMSC would redeliver it for ever. Ids are
cut alike on both sides (response and receipt), so they still match.

`retry` says what the writer does while the database is unavailable: facts from the
SMSC are kept and retried until stored; what a caller can retry itself (an API
accept, an unanswered deliver_sm) fails back to it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple

from . import schema as t


def _length(column: Any) -> int:
    return column.type.length


ID_LENGTH = _length(t.parts.c.smsc_id)
ERROR_LENGTH = _length(t.parts.c.error_code)
ADDRESS_LENGTH = _length(t.inbound_messages.c.source)


def _cut(op: Any, **lengths: int) -> None:
    """Fit peer-written strings of a frozen operation to their columns."""
    for name, length in lengths.items():
        value = getattr(op, name)
        if value and len(value) > length:
            object.__setattr__(op, name, value[:length])


def _pickled_by_fields(cls: Any) -> Any:
    """Pickle `cls` as its class and field values, rebuilt through __init__: half the
    time of dataclasses' own state pickling, both ways. Every operation crosses to the
    writer process (smppd.store.child), and these are the ones of every message."""
    names = tuple(field.name for field in fields(cls))

    def __reduce__(self: Any) -> tuple[Any, ...]:
        return cls, tuple([getattr(self, name) for name in names])

    cls.__reduce__ = __reduce__
    return cls


class Accept(NamedTuple):
    """A new message from the API: charge the account, store it `queued`.

    A tuple, not a frozen dataclass like the operations below: one is made for every
    message on the reactor thread and pickled to the writer process and back into
    an Accept there. A frozen dataclass sets its 22 fields one object.__setattr__ at a
    time (7 µs, against under 2 for the tuple) and a batch of ten crossed the pipe in
    123 µs, against 51 (python -m timeit, 2026-12-01). Immutable all the same;
    `op._replace(...)` where a changed copy is wanted."""

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
    idempotency: Any = None  # idempotency.Claim: the key kept in the same transaction
    # api | job | portal (None: job when job_id is set, else api), the credential
    # that sent it, and the customer's end-customer id.
    channel: str | None = None
    sent_by: str | None = None
    partner: str | None = None
    callback_id: str | None = None  # the callback endpoint named
    links: tuple[tuple[str, str], ...] = ()  # short links put into `text`: (code, URL)


# The HTTP client retries; the daemon must not hold it. (A NamedTuple takes no
# ClassVar: set on the class after it is made.)
Accept.retry = False  # type: ignore[attr-defined]


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class PartSubmitted:
    message_id: str
    part_no: int
    smsc: str
    smsc_id: str
    smsc_key: str
    retry: ClassVar[bool] = True  # a fact from the SMSC: keep trying until it is stored

    def __post_init__(self) -> None:
        _cut(self, smsc_id=ID_LENGTH, smsc_key=ID_LENGTH)


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class PartFailed:
    """A permanent error (or retries exhausted): the message fails and is refunded
    for every part the SMSC never accepted."""

    message_id: str
    part_no: int
    smsc: str | None
    status: str  # rejected | failed
    error_code: str
    retry: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _cut(self, error_code=ERROR_LENGTH)


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class PartUnknown:
    """No response came: the part may have been sent. Not resent, not refunded."""

    message_id: str
    part_no: int
    smsc: str
    reason: str
    retry: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _cut(self, reason=ERROR_LENGTH)


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class LateId:
    """A response that came after its timeout: keep the id so a receipt can settle it."""

    message_id: str
    part_no: int
    smsc: str
    smsc_id: str
    smsc_key: str
    status: int
    retry: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _cut(self, smsc_id=ID_LENGTH, smsc_key=ID_LENGTH)


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class ReceiptSeen:
    """A receipt. `smsc_key` names the part to settle; None when the SMSC's id
    reading is still being learnt (message_id.AutoIds): then `raw` is the id it
    carried and `candidates` its possible readings, (reading, key). Result: the one
    reading whose key names a part in progress, if exactly one does (an observation
    for the learner), else None."""

    smsc: str
    smsc_key: str | None
    status: str
    error_code: str | None
    source: str = "text"  # where the id came from: tlv | text
    raw: str | None = None
    candidates: tuple[tuple[str, str], ...] = ()
    retry: ClassVar[bool] = False  # unanswered deliver_sm: the SMSC redelivers

    def __post_init__(self) -> None:
        _cut(self, smsc_key=ID_LENGTH, raw=ID_LENGTH, error_code=ERROR_LENGTH)
        if self.candidates:
            object.__setattr__(self, "candidates", tuple(
                (reading, key[:ID_LENGTH]) for reading, key in self.candidates))


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class PartResent:
    """A part with no response is sent again (after a lost connection, an unbind, or
    a timeout, as the SMSC's wait_ack_expire says): the history records it."""

    message_id: str
    part_no: int
    smsc: str
    reason: str
    retry: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _cut(self, reason=ERROR_LENGTH)


@dataclass(frozen=True, slots=True)
class LearnIdMode:
    """An SMSC's receipt id reading is learnt: keep it across restarts, and match the
    receipts that waited for it."""

    smsc: str
    source: str  # tlv | text
    reading: str  # message_id.Reading
    retry: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class FragmentSeen:
    """One inbound deliver_sm (an MO or one part of one). Result: True when kept,
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
    retry: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _cut(self, source=ADDRESS_LENGTH, destination=ADDRESS_LENGTH)


@dataclass(frozen=True, slots=True)
class InboundComplete:
    """All fragments of an MO are in: store the message, routed to its account
    (smppd.store.inbound_routing), and link its fragments. `fragment`: the part that
    completes it, kept in the same transaction (its deliver_sm is answered after the
    commit, so routing happens before the ack); None when the parts were all kept
    before (reassembly after a restart). Fragments are linked by `fragment_ids` and by
    `fragment_keys` (their dedupe keys: a part written in this same batch has no id
    yet). A message whose fragments are all linked already is not stored twice.
    Result: InboundStored, or None when `fragment` was a redelivery."""

    smsc: str
    source: str
    destination: str
    data_coding: int
    text: str | None
    payload: bytes
    parts: int
    tlvs: str | None
    fragment_ids: tuple[int, ...] = ()
    fragment: FragmentSeen | None = None
    fragment_keys: tuple[str, ...] = ()
    received_at: float | None = None  # when the completing part came (votes' time)

    @property
    def retry(self) -> bool:
        """With its completing part, the SMSC redelivers what is not kept; without
        one, the parts are kept already and only the message is to be written."""
        return self.fragment is None
    account_id: int | None = None  # set once MO routing knows the account

    def __post_init__(self) -> None:
        _cut(self, source=ADDRESS_LENGTH, destination=ADDRESS_LENGTH)


class JobMessage(NamedTuple):
    """One row of a bulk job, as an Accept without short links: the same fields under
    the same names (the store reads either alike). Issue 14 made it a tuple (a frozen
    dataclass cost a tenth of a CSV row's CPU); Accept is one too now, and the two
    stay separate types because the store tells a job's rows from API messages by
    type. A row with short links stays an Accept (smppd.store.links may rewrite
    it)."""

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
    idempotency: Any = None
    channel: str | None = None
    sent_by: str | None = None
    partner: str | None = None
    callback_id: str | None = None
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
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
    messages: tuple[Accept | JobMessage, ...]
    created_at: float
    description: str | None = None
    # Issue 12: job-wide values (rows may override ref_id and params).
    ref_id: str | None = None
    params: str | None = None
    partner: str | None = None
    callback_id: str | None = None
    shorten_links: bool = False
    channel: str | None = None  # api | portal: where the job was made (issue 15)
    sent_by: str | None = None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class PurgePending:
    """Forget receipts that never found their message (ids from before smppd's time,
    or an SMSC's mistake) once they are older than `max_age` seconds. Result: rows."""

    max_age: float
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Warm:
    """Messages about to be sent (a job's next page): the writer learns their state
    now, so their outcomes need no read. Rows: (id, account, points, smsc, parts)."""

    messages: tuple[tuple[str, int, int, str | None, int], ...]
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class FinishJob:
    """Every batch is in: the job becomes running or scheduled."""

    job_id: str
    state: str
    rejected_rows: int
    row_errors: str | None
    idempotency: Any = None  # idempotency.Claim: the key kept in the same transaction
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class AbortJob:
    """Undo a job being created (no money, or a crash halfway): its messages are
    deleted and what they were charged goes back. Result: points refunded."""

    job_id: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class SetJobState:
    """pause / resume / complete / start a scheduled job. Result: the state now."""

    job_id: str
    account_id: int
    state: str
    allowed_from: tuple[str, ...]
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class StopJob:
    """Cancel every message of the job not yet (even partly) sent, refund them, in
    one transaction. `in_flight` are ids the dispatcher is sending right now.
    Result: (cancelled messages, points refunded)."""

    job_id: str
    account_id: int
    in_flight: frozenset[str]
    # Several instances (issue 14): the stopping instance; messages another live
    # instance holds are left to it (it cancels them itself once it sees the stop).
    owner: str | None = None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
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
    retry: ClassVar[bool] = False


Operation = (Accept | LedgerEntry | CreateJob | Warm | PurgePending | FinishJob | AbortJob
             | SetJobState | StopJob | PartSubmitted | PartFailed | PartUnknown | LateId
             | PartResent | LearnIdMode | ReceiptSeen | FragmentSeen | InboundComplete)


class InsufficientBalance(Exception):
    """The account cannot pay for the message; nothing was stored."""

    def __init__(self, needed: int, balance: int) -> None:
        super().__init__(f"needs {needed} points, the balance is {balance}")
        self.needed = needed
        self.balance = balance

    def __reduce__(self) -> tuple[Any, ...]:
        # A result that crosses from the writer process (smppd.store.child).
        return type(self), (self.needed, self.balance)


def describe(op: Any) -> str:
    message = getattr(op, "message_id", None)
    return f"{type(op).__name__}" + (f" message={message}" if message else "")
