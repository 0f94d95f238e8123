"""A message on its way out, and the token a submit carries through the session."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..store.queries import QueuedMessage


@dataclass(slots=True)
class Outgoing:
    """What the store holds (`queued`) plus the progress of sending it; `unsent` are
    the part numbers not yet submitted."""

    queued: QueuedMessage
    route: str
    unsent: deque[int]
    fields: list[dict[str, Any]] | None = None  # the parts' text fields, once split
    failed: bool = False
    attempts: dict[int, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.queued.id

    @property
    def job_id(self) -> str | None:
        return self.queued.job_id

    @classmethod
    def from_queued(cls, message: QueuedMessage, route: str) -> Outgoing:
        return cls(message, route, deque(message.unsent))


@dataclass(slots=True)
class PartToken:
    """What the session carries for one submit and hands back with its outcome."""

    message: Outgoing
    part_no: int
    channel: Any  # the dispatcher's Channel
    sent_at: float
