"""What the callbacks and links ask the store to record (issue 12): frozen, like every
writer operation (see operations.py), applied by outbox.py and links.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class CreateEndpoint:
    """Register a callback endpoint. `default` None: it becomes the account's default
    when the account has none and it wants message events. Result: the endpoint as
    the API shows it, or TooManyEndpoints."""

    account_id: int
    endpoint_id: str
    url: str
    on_status: bool
    on_final: bool
    on_inbound: bool
    default: bool | None
    secret: str
    created_at: float
    max_endpoints: int
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class DeleteEndpoint:
    """Remove an endpoint; its events not yet delivered are cancelled. Result: True,
    or False when the account has no such endpoint."""

    account_id: int
    endpoint_id: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class RotateSecret:
    """A new signing key for events sent to URLs that are not endpoints (forwards)."""

    account_id: int
    secret: str
    retry: ClassVar[bool] = False


Result = tuple[int, str, int, float, "str | None", "int | None", "float | None"]


@dataclass(frozen=True, slots=True)
class DeliveryResults:
    """What became of delivery attempts, many at once. Rows: (seq, state, attempts,
    next_at, last_error, last_status, finished_at); times as Unix seconds or None.

    `delivered`: the successes, which are nearly all of them, in groups of
    (finished_at, attempts, last_status, seqs), each group written by one
    UPDATE ... WHERE seq IN (...): a backlog drained at thousands a second is marked
    delivered by the daemon's writer, and a row of seven values each, parsed from the
    worker's pipe and bound one by one, was the most of what a delivery cost the
    daemon (smppd.callbacks.drainer.compact makes them)."""

    rows: tuple[Result, ...]
    delivered: tuple[tuple[float, int, int | None, tuple[int, ...]], ...] = ()
    retry: ClassVar[bool] = True  # facts: kept until stored, or they would be re-sent

    def expanded(self) -> list[Result]:
        """Every result as a row, the delivered groups included."""
        return [*self.rows, *((seq, "delivered", attempts, finished, None, status, finished)
                              for finished, attempts, status, seqs in self.delivered
                              for seq in seqs)]


@dataclass(frozen=True, slots=True)
class ExpireTarget:
    """Give up on a target's pending events created before `before` (Unix seconds):
    they become failed with `error`. Result: how many."""

    target: str
    before: float
    error: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class ResendEvent:
    """Deliver a failed event again (same id, so a receiver that got it after all can
    drop the copy): pending and due at `at`. `account_id` None: any account's (the
    operator's console). Result: True when it was a failed event (of that account)."""

    event_id: str
    account_id: int | None
    at: float
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class PurgeEvents:
    """Forget finished events older than `max_age` seconds. Result: rows removed."""

    max_age: float
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class ClickSeen:
    """A short link was followed. Result: the URL to redirect to, or None for a code
    that names no link."""

    code: str
    at: float
    agent: str  # mobile | tablet | desktop | bot | other
    retry: ClassVar[bool] = False  # the browser waits: better a 503 now than a hang


@dataclass(frozen=True, slots=True)
class ClicksSeen:
    """Clicks the links listener already answered (it knows their codes from its
    cache): (code, at, agent) each, recorded as ClickSeen records one. Result: how
    many were recorded (a code that names no link is skipped)."""

    clicks: tuple[tuple[str, float, str], ...]
    retry: ClassVar[bool] = True  # nobody waits: held through a stall, not refused


class TooManyEndpoints(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"an account has at most {limit} callback endpoints")
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        # A result that crosses from the writer process (smppd.store.child).
        return type(self), (self.limit,)
