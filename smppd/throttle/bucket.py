"""A token bucket driven by the caller's clock (no timers of its own, so it is
testable without a reactor and costs nothing while idle)."""

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
    """`rate` tokens per second, at most `burst` saved up; rate 0 means unlimited.

    Paced in releases: once the bucket has run dry, it gives nothing until the next
    point of a fixed grid of the clock (every `period` = burst / rate seconds, with
    burst = rate / `releases` a second: at one release a second, at .5 of each
    second; at four, at .125, .375, .625 and .875; at a rate below `releases`, one
    token at a time as it accrues), and then all the whole tokens accrued since. The
    rate is the same as handing out one token every 1/rate s, but the sender wakes
    `releases` times a second instead of `rate` times: at a 100/s contract that is
    one timer call, one socket write and about one store transaction a second, not
    100 of each (issues 13 and 14: the CPU per message at a contract rate). A
    carrier counting per second still counts the rate: each second holds whole
    slots of the grid, and a release that comes late keeps what accrued meanwhile (up
    to one period's worth) instead of losing it to the cap.

    `pause(seconds)` holds every token back for a while: what an SMSC's
    ESME_RTHROTTLED asks for.
    """

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0,
                 releases: float = RELEASES_PER_SECOND) -> None:
        self.rate = rate
        self.releases = releases  # a second while paced; set_rate keeps it
        self.burst = burst if burst is not None else max(1.0, rate / releases)
        self.tokens = self.burst
        self.updated = now
        self.paused_until = 0.0
        self.dry = False  # ran out: nothing until `next_release`
        self.next_release = 0.0

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    @property
    def period(self) -> float:
        """Seconds between releases while the bucket is kept dry."""
        return self.burst / self.rate

    def _refill(self, now: float) -> None:
        if now > self.updated:
            # While paced, a release up to a period late keeps what accrued meanwhile,
            # so timer lateness does not lower the rate; idle, at most the burst is
            # saved.
            cap = 2 * self.burst if self.dry else self.burst
            self.tokens = min(cap, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def _last_point(self, now: float) -> float:
        """The latest point of the release grid at or before `now`."""
        period = self.period
        offset = period / 2
        return math.floor((now - offset) / period + _EPSILON) * period + offset

    def available(self, now: float) -> int:
        """Whole tokens that may be spent now."""
        if now < self.paused_until:
            return 0
        if self.unlimited:
            return 1 << 30
        if not self.dry:
            self._refill(now)
        else:
            if now < self.next_release - _EPSILON:
                return 0
            # A release is what accrued up to its grid point, however late its timer
            # fires: what accrued since comes with the next one. So each release holds
            # `burst` tokens, and a clock second holding a release holds the rate,
            # whatever the lateness within the slot (with what accrued up to the
            # moment taken instead, a release 50 ms late held 105 and the next 95:
            # seen at a carrier counting per second).
            self._refill(now if self.burst <= 1 else max(self.next_release,
                                                         self._last_point(now)))
            if self.tokens < 1 - _EPSILON:
                return 0
            self.dry = False
            if self.tokens >= 2 * self.burst - _EPSILON:
                # A whole period went by untaken: nobody was waiting (idle), not a
                # late timer. Idle saves up the burst, no more.
                self.tokens = self.burst
        return int(self.tokens + _EPSILON)

    def spend(self, count: int, now: float) -> None:
        """Take `count` of what `available` gave. No refill here: what accrued after
        the release's grid point is counted at the next look, not in this release."""
        if not self.unlimited:
            self.tokens -= count
            if self.tokens < 1 - _EPSILON:
                self._run_dry(now, released=True)

    def _run_dry(self, now: float, released: bool = False) -> None:
        """The next release: the first grid point after now by which a token accrues.

        One release a slot of the grid (the period around each grid point). A release
        before its slot's grid point (`released` early: the saved-up burst, the first
        thing sent after an idle spell) stands for that slot's release, and what the
        next one gives accrues from that grid point on, not from now. Otherwise the
        slot's grid point released what accrued meanwhile on top of the burst, and the
        clock second holding them carried up to an eighth more than the rate (a
        carrier counting per second saw 112 at a 100/s contract)."""
        self.dry = True
        period = self.period
        # Half a period off the second: a release a little late or early stays in
        # its second (on the boundary it would land in either, 75 then 125).
        offset = period / 2
        if released and self.burst > 1:
            slot_point = math.floor(now / period + _EPSILON) * period + offset
            if slot_point > now + _EPSILON:
                self.updated = slot_point  # nothing accrues before it (see _refill)
                now = slot_point
        # Tokens accrue from `updated` (the release's grid point, or an early release's).
        ready = max(now, self.updated + max(0.0, 1 - self.tokens) / self.rate)
        if self.burst <= 1:  # one token a release (a rate of a few a second): no grid
            self.next_release = ready
            return
        point = math.ceil((ready - offset) / period - _EPSILON) * period + offset
        if point <= now + _EPSILON:
            point += period
        self.next_release = point

    def wait(self, now: float) -> float:
        """Seconds until tokens are available (0 if some are now)."""
        if now < self.paused_until:
            return self.paused_until - now
        if self.unlimited:
            return 0.0
        if self.dry:  # no refill: `available` counts a release up to its grid point
            return max(0.0, self.next_release - now)
        self._refill(now)
        return 0.0 if self.tokens >= 1 - _EPSILON else (1 - self.tokens) / self.rate

    def restart(self, now: float) -> None:
        """Nothing saved up: the next tokens come at the next release point. For a
        bind that was held (a newcomer to a shared contract, smppd.daemon.cluster):
        a burst saved while it waited would land on top of the others' releases."""
        if not self.unlimited:
            self.tokens = 0.0
            self.updated = now
            self._run_dry(now)

    def pause(self, seconds: float, now: float) -> None:
        self.paused_until = max(self.paused_until, now + seconds)

    def set_rate(self, rate: float, now: float | None = None) -> None:
        if self.rate <= 0 < rate:
            self.tokens = 0.0  # from unlimited: start empty, not with a free burst
            if now is not None:
                self.updated = now
        self.rate = rate
        self.burst = max(1.0, rate / self.releases)
        self.tokens = min(self.tokens, self.burst)
        if rate > 0 and (self.dry or self.tokens < 1 - _EPSILON):
            self._run_dry(self.updated if now is None else now)
