"""Reconnect delays: exponential, capped, with jitter.

Fixed delays make N binds that dropped together reconnect together, for ever. Each
delay here is drawn from [ceiling/2, ceiling] ("equal jitter"): spread enough that
attempts de-synchronise, never so short that a flapping SMSC is hammered. The
caller resets it only after a bind has stayed up for a while, so a carrier that
accepts TCP and then refuses the bind still sees growing delays.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 1.0, maximum: float = 60.0, factor: float = 2.0,
                 rng: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0
