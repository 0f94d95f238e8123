"""A contract rate counted per clock second, driven by the caller's clock (no timers of
its own, so it is testable without a reactor and costs nothing while idle)."""

from __future__ import annotations

import math

# Float slack: a clock advanced in steps of 0.01 reads 0.09999999999999999 at 0.1.
_EPSILON = 1e-9
# Releases a second while paced (the default of `smscs[].releases_per_second`). One:
# on a virtual machine that charges a sleeping thread for waking (bench/coldwake.py:
# 1.3 ms after 0.1 s asleep, 3 ms after 0.5-1 s), a paced bind's CPU is mostly the
# wake-ups of a release (the reactor, the writer thread, the writer process), not the
# messages. At a 100/s contract (peer-bench compare.py --throughput 100) smppd used
# 0.42-0.49 CPU s per 1,000 messages with four releases a second, 0.40-0.43 with two
# and 0.34 with one, against Kannel's 0.35-0.39. A second's worth back to back is
# what a per-second count allows; an SMSC that minds bursts within the second gets
# more releases from its own setting.
RELEASES_PER_SECOND = 1


class TokenBucket:
    """`rate` sends a second, counted per second of the clock; rate 0 means unlimited.

    Why counted per clock second and not a classic token bucket: the carrier counts
    per second of its clock, and a bucket refilling continuously gives a second its
    saved-up burst plus what accrues within it (a release taken in part, then topped
    up as a window frees, held 149-199 in one second at a 100/s contract). Here each
    clock second holds at most its share of the rate (the rate, with a fractional
    rate's fractions spread over seconds), whatever the caller does: takes in part,
    looks late, pauses, changes the rate or the number of releases.

    Within a second the count is spread over `releases` slots: by the end of slot j
    at most (j + 1) / releases of the second's share has been given, so a slot
    missed (a late timer) is made up later in the same second, never in the next. A
    sender that has taken all it may (`dry`: it has work waiting) is given the next
    slot's share at the middle of that slot (at .5 of each second with one release a
    second): half a slot from either edge, so a release that comes late, or a
    carrier's clock a little off ours, still counts it in its own second. A sender
    that was not waiting (idle, or taking less than it may) is given what the count
    allows at once: the first message after an idle spell is not held back.

    One release a second (the default) wakes the sender once a second at any
    contract rate, not `rate` times: one timer call, one socket write and about one
    store transaction a second (issues 13 and 14: the CPU per message at a contract
    rate).

    `pause(seconds)` holds everything back for a while: what an SMSC's
    ESME_RTHROTTLED asks for.
    """

    def __init__(self, rate: float, now: float = 0.0,
                 releases: int = RELEASES_PER_SECOND) -> None:
        self.rate = rate
        self._releases = releases
        self.paused_until = 0.0
        self.dry = False  # took all it may: nothing until `next_release`
        self.next_release = 0.0
        self._dry_at = 0.0  # when it went dry: the next release is recounted from here
        self._origin = math.floor(now)  # seconds are counted from here (small floats)
        self._second: int | None = None  # the clock second `_given` counts
        self._given = 0
        self._exhausted = False  # the next second looked at counts as used up

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    @property
    def releases(self) -> int:
        """Slots a second (config `smscs[].releases_per_second`)."""
        return self._releases

    @releases.setter
    def releases(self, releases: int) -> None:
        """A reload: what this second holds still counts; a dry sender's next release
        moves to the new slots."""
        self._releases = releases
        if self.dry and not self.unlimited:
            self._run_dry(self._dry_at)

    @property
    def period(self) -> float:
        """Seconds between releases while the sender is kept dry."""
        return 1.0 / self.releases

    def _share(self, second: int) -> int:
        """The most clock second `second` may hold: the rate, a fractional rate's
        fractions carried from second to second (2.5/s: 2, 3, 2, 3...)."""
        second -= self._origin
        rate = self.rate
        return math.floor((second + 1) * rate + _EPSILON) - math.floor(second * rate + _EPSILON)

    def _allowed(self, share: int, slot: int) -> int:
        """What a second of `share` may have given by the end of its slot `slot`."""
        if slot >= self.releases - 1:
            return share
        return math.floor((slot + 1) * share / self.releases + _EPSILON)

    def _where(self, now: float) -> tuple[int, int]:
        """(clock second, slot within it) of `now`, and the count moved to it."""
        second = math.floor(now + _EPSILON)
        slot = min(self.releases - 1, max(0, int((now - second) * self.releases + _EPSILON)))
        if second != self._second:
            self._second, self._given = second, 0
            if self._exhausted:
                self._given = self._share(second)
        self._exhausted = False
        return second, slot

    def _left(self, now: float) -> int:
        second, slot = self._where(now)
        return self._allowed(self._share(second), slot) - self._given

    def available(self, now: float) -> int:
        """Whole tokens that may be spent now."""
        if now < self.paused_until:
            return 0
        if self.unlimited:
            return 1 << 30
        if self.dry and now < self.next_release - _EPSILON:
            return 0
        left = self._left(now)
        if left <= 0:
            self._run_dry(now)
            return 0
        self.dry = False
        return left

    def spend(self, count: int, now: float) -> None:
        """Take `count` of what `available(now)` gave."""
        if self.unlimited:
            return
        self._where(now)
        self._given += count
        if self._left(now) <= 0:
            self._run_dry(now)

    def _run_dry(self, now: float) -> None:
        """Nothing more until the middle of the next slot whose count allows more."""
        self.dry = True
        self._dry_at = now
        second, slot = self._where(now)
        given = self._given
        share = self._share(second)
        if share > given:  # later in this second
            wanted = math.ceil((given + 1) * self.releases / share - _EPSILON) - 1
            self.next_release = second + (max(wanted, slot + 1) + 0.5) / self.releases
            if max(wanted, slot + 1) < self.releases:
                return
        # The first later second that may hold a token: the next one, or, at a rate
        # below one a second, the one whose count first reaches the next whole token.
        counted = math.floor((second + 1 - self._origin) * self.rate + _EPSILON)
        later = max(second + 1,
                    math.ceil((counted + 1) / self.rate - _EPSILON) - 1 + self._origin)
        share = max(1, self._share(later))
        first = max(0, math.ceil(self.releases / share - _EPSILON) - 1)
        self.next_release = later + (first + 0.5) / self.releases

    def wait(self, now: float) -> float:
        """Seconds until tokens are available: 0 only if `available(now)` gives some."""
        if now < self.paused_until:
            return self.paused_until - now
        if self.unlimited:
            return 0.0
        if self.dry and now < self.next_release - _EPSILON:
            return self.next_release - now
        if self._left(now) <= 0:  # (also a release that passed unlooked-at)
            self._run_dry(now)
            return max(0.0, self.next_release - now)
        return 0.0

    def restart(self, now: float) -> None:
        """Nothing saved up: what the count allowed before now is taken as given, and
        the next tokens come at the next release. For a bind that was held (a
        newcomer to a shared contract, smppd.daemon.cluster): the others' releases
        of this second are already out."""
        if not self.unlimited:
            second, slot = self._where(now)
            self._given = max(self._given, self._allowed(self._share(second), slot))
            self._run_dry(now)

    def pause(self, seconds: float, now: float) -> None:
        self.paused_until = max(self.paused_until, now + seconds)

    def set_rate(self, rate: float, now: float | None = None) -> None:
        """A new rate from now on; what this second already holds still counts. From
        unlimited, this second counts as used up (it may have held anything)."""
        if self.rate <= 0 < rate:
            self._exhausted = True  # counted at the next look, in whichever second
            self._second = None
            self.dry = False
        self.rate = rate
        if rate <= 0:
            return
        if now is not None and (self.dry or self._exhausted):
            self._run_dry(now)
        elif self.dry:  # (used up from unlimited, with no `now`: the next look counts it)
            self._run_dry(self._dry_at)
