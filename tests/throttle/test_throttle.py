"""The throttle policies, each driven by `now` passed in: token bucket, back-off,
rate controllers, the rate meter and fair turns."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppd.throttle.backoff import Backoff
from smppd.throttle.bucket import TokenBucket
from smppd.throttle.fairness import CappedSource, RoundRobin, RouteQueues
from smppd.throttle.meter import RateMeter
from smppd.throttle.rate import AdaptiveRate, FixedRate, Pacing


def test_token_bucket_pause_and_rates() -> None:
    bucket = TokenBucket(4, now=0.0, releases=4)  # a rate of `releases`: one a slot
    assert bucket.available(0.0) == 1
    bucket.spend(1, 0.0)
    # Dry: the next one in the middle of the next slot.
    assert bucket.available(0.0) == 0 and bucket.wait(0.0) == pytest.approx(0.375)
    bucket.pause(2.0, 0.5)
    assert bucket.available(1.0) == 0 and bucket.wait(1.0) == 1.5
    # After the pause, what the count allows by this slot of second 2 (3 of its 4).
    assert bucket.available(2.6) == 3
    assert TokenBucket(0).available(5.0) > 10_000  # 0 = unlimited


def test_token_bucket_releases_a_second_at_once_by_default() -> None:
    """Issues 13 and 14: by default a paced bind is given a second's worth once a
    second, at .5 of each second (half a period off the boundary, so a late or early
    timer stays in its second): one wake-up a second at any contract rate."""
    bucket = TokenBucket(100, now=0.0)
    assert bucket.period == pytest.approx(1.0) and bucket.available(0.0) == 100
    bucket.spend(100, 0.0)  # the saved-up burst: the first slot's release
    assert bucket.available(0.9) == 0 and bucket.wait(0.9) == pytest.approx(0.6)
    assert bucket.available(1.5) == 100
    bucket.spend(100, 1.5)
    # Woken late by a different amount each time, up to 0.45 s (simulated seconds):
    # each release still holds exactly the second's worth, so every clock second
    # does (what accrued while a timer was late comes with the next release).
    lateness = itertools.cycle([0.02, 0.3, 0.001, 0.45, 0.0, 0.1])
    now, wakeups, per_second = 1.5, 0, [0] * 10
    per_second[0], per_second[1] = 100, 100
    now += bucket.wait(now) + next(lateness)
    while now < 10.0:
        wakeups += 1
        count = bucket.available(now)
        bucket.spend(count, now)
        per_second[int(now)] += count
        now += bucket.wait(now) + next(lateness)
    assert per_second == [100] * 10
    assert wakeups == 8  # one a second (2 s to 9 s)


def test_token_bucket_releases_a_quarter_second_at_once_after_running_dry() -> None:
    """Issue 14: at 100/s with four releases a second (`smscs[].releases_per_second:
    4`) the bucket hands out about 25 tokens four times a second on a grid half a
    period off the second, not one token a hundred times, and still exactly its rate
    in every second."""
    bucket = TokenBucket(100, now=0.0, releases=4)
    assert bucket.period == pytest.approx(0.25) and bucket.available(0.0) == 25
    bucket.spend(25, 0.0)
    # The saved-up burst went out before the first slot's grid point (.125): it was
    # that slot's release. Nothing more until the next slot's point (.375), which
    # gives what accrued from .125.
    assert bucket.available(0.125) == 0 and bucket.wait(0.1) == pytest.approx(0.275)
    assert bucket.available(0.375) == 25
    bucket.spend(3, 0.375)  # not dry: the rest may still be spent one by one
    assert bucket.available(0.375) == 22 and bucket.wait(0.375) == 0.0
    bucket.spend(22, 0.375)
    assert bucket.available(0.6) == 0 and bucket.wait(0.6) == pytest.approx(0.025)
    assert bucket.available(0.625) == 25
    bucket.spend(25, 0.625)
    # A sender woken only when the bucket says, each time a little late. The clock is
    # the `now` passed in (simulated seconds), never the wall clock: a pacing check.
    now, wakeups, per_second = 0.7, 0, [0] * 10
    per_second[0] = 50
    while now < 10.0:
        wakeups += 1
        count = bucket.available(now)
        bucket.spend(count, now)
        per_second[int(now)] += count
        now += bucket.wait(now) + 0.013
    assert per_second[0] <= 100 and per_second[1:] == [100] * 9  # the rate, each second
    assert wakeups <= 40  # four wake-ups a second


@given(rate=st.sampled_from([8, 20, 100, 250, 1000]),
       releases=st.sampled_from([1, 2, 4, 10]),
       start=st.floats(min_value=0.0, max_value=3.0),
       idle=st.floats(min_value=0.0, max_value=5.0),
       late=st.floats(min_value=0.0, max_value=0.45))
def test_token_bucket_never_gives_a_clock_second_more_than_its_rate(
        rate: int, releases: int, start: float, idle: float, late: float) -> None:
    """A carrier counts per second of the clock. A sender that starts at any moment
    (after an idle spell of any length), takes all it is given and is woken when the
    bucket says, late by up to 45 % of a release period, is given at most the rate in
    every clock second, and the rate itself from the second whole second on (the
    first may have lent to the second before it)."""
    bucket = TokenBucket(rate, now=0.0, releases=releases)
    lateness = late * bucket.period
    now = start + idle
    bucket.available(start)  # seen at `start`, then idle
    given: dict[int, int] = {}
    end = math.floor(now) + 6
    while now < end:
        count = bucket.available(now)
        bucket.spend(count, now)
        given[math.floor(now)] = given.get(math.floor(now), 0) + count
        now += bucket.wait(now) + lateness
    assert max(given.values()) <= rate + 1, given
    whole = [given.get(second, 0) for second in range(math.floor(start + idle) + 2, end - 1)]
    assert all(count >= rate - 1 for count in whole), given


def test_token_bucket_after_an_idle_spell_saves_only_its_burst() -> None:
    bucket = TokenBucket(100, now=0.0, releases=4)
    bucket.spend(25, 0.0)  # dry, and then nobody asks for a while
    assert bucket.available(30.0) == 25
    bucket = TokenBucket(100, now=0.0)  # one release a second: a second's worth
    bucket.spend(100, 0.0)
    assert bucket.available(30.0) == 100


def test_token_bucket_from_unlimited_starts_dry() -> None:
    """The second in which the adaptive rate leaves unlimited may have held anything:
    it counts as used up, and the rate starts with the next second's first release."""
    bucket = TokenBucket(0, now=0.0, releases=4)
    bucket.set_rate(50, now=3.0)
    assert bucket.available(3.0) == 0 and bucket.wait(3.0) == pytest.approx(1.125)
    assert bucket.available(3.9) == 0
    assert bucket.available(4.125) == 12  # a quarter of 50, the half carried


def test_back_from_unlimited_by_a_reload_the_second_counts_as_used_up() -> None:
    """A reload to no limit and back while a release was awaited: the second that
    ran unlimited holds nothing more (it held 600 when the flag was spent on the
    second the sender had gone dry in)."""
    bucket = TokenBucket(100, now=10.0)
    bucket.spend(bucket.available(10.2), 10.2)
    bucket.set_rate(0)
    bucket.spend(500, 20.3)
    bucket.set_rate(100)  # Channel.reconfigure passes no `now`
    assert bucket.available(20.9) == 0
    assert bucket.wait(20.9) == pytest.approx(0.6) and bucket.available(21.5) == 100


def test_below_one_a_second_the_next_token_is_found_without_a_scan() -> None:
    bucket = TokenBucket(0.3, now=0.0)  # seconds 3, 6, 9... hold one each
    assert bucket.available(0.0) == 0 and bucket.wait(0.0) == pytest.approx(3.5)
    # Not looked at in second 3: that token is gone, and wait says so.
    assert bucket.available(4.2) == 0 and bucket.wait(4.2) == pytest.approx(2.3)
    assert bucket.available(6.5) == 1
    slow = TokenBucket(1e-6, now=1.8e9)  # one in about 11.6 days
    assert slow.available(1.8e9) == 0 and 1e5 < slow.wait(1.8e9) <= 1e6 + 1


def test_a_release_taken_in_part_is_not_topped_up_within_its_second() -> None:
    """A window-bound sender takes part of a release, then more as slots free: the
    second still holds the rate, not the release plus what accrued meanwhile (a
    continuously refilled bucket gave 199 here)."""
    bucket = TokenBucket(100, now=0.0)
    assert bucket.available(0.0) == 100
    bucket.spend(99, 0.0)
    assert bucket.available(0.99) == 1
    bucket.spend(1, 0.99)
    assert bucket.available(0.999) == 0 and bucket.wait(0.999) == pytest.approx(0.501)
    assert bucket.available(1.5) == 100


def test_a_restart_takes_this_seconds_count_as_given() -> None:
    """A bind joining a shared contract mid-second (smppd.daemon.cluster) sends
    nothing more in that second: the others' releases of it are out already."""
    bucket = TokenBucket(100, now=0.0)
    bucket.restart(0.01)
    assert bucket.available(0.9) == 0 and bucket.wait(0.9) == pytest.approx(0.6)
    assert bucket.available(1.5) == 100
    quarters = TokenBucket(100, now=0.0, releases=4)
    quarters.restart(0.7)  # in slot 2: slots 0-2 count as given
    assert quarters.available(0.875) == 25 and quarters.available(1.125) == 25


def test_late_timers_lose_nothing_within_the_second() -> None:
    """Woken 60 ms late at ten releases a second (past each slot's end): the slots
    missed are made up later in the same second. Only the last slot of a second,
    pushed into the next, is lost: 90 a second (a bucket that moved a late release
    to the next slot lost every other one: 50)."""
    bucket = TokenBucket(100, now=0.0, releases=10)
    now, given = 0.0, 0
    while now < 10.0:
        count = bucket.available(now)
        bucket.spend(count, now)
        given += count
        now += bucket.wait(now) + 0.06
    assert 890 <= given <= 1000


def test_changing_the_releases_mid_second_keeps_the_count() -> None:
    bucket = TokenBucket(100, now=0.0)
    bucket.spend(bucket.available(2.5), 2.5)  # the second's release
    bucket.releases = 4  # a reload (smppd.daemon.dispatcher.Channel.reconfigure)
    bucket.set_rate(100)
    assert bucket.available(2.7) == 0 and bucket.available(2.875) == 0
    assert bucket.available(3.125) == 25


@given(steps=st.lists(st.tuples(st.floats(min_value=0.0, max_value=0.7),
                                st.sampled_from(["all", "part", "restart", "pause",
                                                 "releases"]),
                                st.integers(min_value=1, max_value=10)),
                      min_size=1, max_size=60),
       rate=st.sampled_from([3, 20, 100, 250]))
def test_no_clock_second_holds_more_than_the_rate_whatever_the_sender_does(
        steps: list[tuple[float, str, int]], rate: int) -> None:
    """Takes of any part at any moment, restarts, pauses and reloads of the number of
    releases, in any order: every clock second holds at most the rate, and `wait`
    says 0 only when there is something to take."""
    bucket = TokenBucket(rate, now=0.0)
    now, given = 0.0, {}
    for delay, action, number in steps:
        now += delay
        if action == "restart":
            bucket.restart(now)
        elif action == "pause":
            bucket.pause(number / 10, now)
        elif action == "releases":
            bucket.releases = number
            bucket.set_rate(rate, now)
        else:
            count = bucket.available(now)
            taken = count if action == "all" else min(count, number)
            bucket.spend(taken, now)
            given[math.floor(now)] = given.get(math.floor(now), 0) + taken
        # Never "now" while nothing is given: the dispatcher would spin on its timer.
        assert bucket.available(now) > 0 or bucket.wait(now) > 0
    assert all(count <= rate for count in given.values()), given


def test_backoff_grows_is_capped_and_jittered() -> None:
    """Checklist 14 (the arithmetic; the TCP test shows it on real binds)."""
    backoffs = [Backoff(1.0, 30.0, 2.0, rng=random.Random(seed)) for seed in range(20)]
    rounds = [[b.next_delay() for b in backoffs] for _ in range(8)]
    for attempt, delays in enumerate(rounds):
        ceiling = min(30.0, 2.0 ** attempt)
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    # 20 binds killed at once: from the 3rd attempt their cumulative times spread out.
    times = sorted(sum(r[i] for r in rounds[:4]) for i in range(20))
    assert min(b - a for a, b in itertools.pairwise(times)) > 0
    assert max(max(r) for r in rounds) <= 30.0
    backoffs[0].reset()
    assert backoffs[0].next_delay() <= 1.0
    with pytest.raises(ValueError):
        Backoff(0)


def test_retry_ceilings_are_exponential_without_jitter() -> None:
    retries = Backoff(1.0, 60.0, 2.0, jitter=False)
    assert [retries.ceiling(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert [retries.next_delay() for _ in range(3)] == [1, 2, 4]


def test_adaptive_rate_halves_once_per_burst_and_wins_back_a_tenth() -> None:
    rate = AdaptiveRate(100, now=0.0)
    for _ in range(5):  # a window's worth of refusals arrives together
        rate.on_throttled(0.0)
    assert rate.bucket.rate == 50
    assert rate.bucket.paused_until == pytest.approx(0.1 * 2 ** 5)
    rate.on_ok(0.0)
    assert rate.tick(0.5) is False  # still paused
    rates = []
    for second in range(1, 10):  # paused until 3.2 s, then a tenth each second
        rate.tick(float(second))
        rates.append(rate.bucket.rate)
    assert rates == [50, 50, 50, 60, 70, 80, 90, 100, 100]


def test_adaptive_rate_without_a_contract_halves_the_measured_rate_then_lets_go() -> None:
    rate = AdaptiveRate(0, now=0.0)
    rate.meter.add(400)
    rate.meter.update(1.0)  # 400/s measured before the SMSC objected
    rate.on_throttled(1.0)
    assert rate.bucket.rate == 200 and rate.ceiling == 400
    for second in range(2, 12):
        rate.tick(float(second))
    assert rate.bucket.rate == 0 and rate.ceiling == 0  # unlimited again


def test_pacing_sets_the_holds_the_floor_and_the_recovery_step() -> None:
    """What a test (or an operator) sets in `throttle:` is what the rate does: holds
    from pause_base doubling up to pause_max, never below the floor, one step
    back up per recovery tick."""
    pacing = Pacing(pause_base=0.01, pause_max=0.04, recovery_interval=0.05, floor=4)
    rate = AdaptiveRate(10, now=0.0, pacing=pacing)
    holds = []
    for _ in range(4):
        rate.on_throttled(0.0)
        holds.append(rate.bucket.paused_until)
    assert holds == pytest.approx([0.02, 0.04, 0.04, 0.04])
    assert rate.bucket.rate == 5  # halved once for the burst
    rate.on_ok(0.0)
    for _ in range(10):
        rate.on_throttled(0.0)  # the tenth refusal in a row halves again: floor
    assert rate.bucket.rate == 4
    rate.on_ok(0.0)
    ticks = [round(t * pacing.recovery_interval, 2) for t in range(1, 9)]
    rates = []
    for now in ticks:
        rate.tick(now)
        rates.append(rate.bucket.rate)
    assert rates == [5, 6, 7, 8, 9, 10, 10, 10]


def test_queue_full_halves_once_and_pauses_as_long_as_the_part_waits() -> None:
    rate = AdaptiveRate(40, now=0.0)
    rate.on_queue_full(0.0, pause=4.0)
    rate.on_queue_full(0.0, pause=4.0)
    assert rate.bucket.rate == 20 and rate.bucket.paused_until == 4.0


def test_fixed_rate_ignores_refusals() -> None:
    rate = FixedRate(30, now=0.0)
    rate.on_throttled(0.0)
    rate.on_queue_full(0.0, 5.0)
    assert rate.bucket.rate == 30 and rate.bucket.paused_until == 0
    assert rate.tick(1.0) is False
    rate.set_contract(10)
    assert rate.bucket.rate == 10


def test_rate_meter_smooths_over_whole_intervals() -> None:
    meter = RateMeter(now=0.0)
    meter.add(100)
    assert meter.update(0.5) == 0  # not a whole interval yet
    assert meter.update(1.0) == 100
    meter.add(0)
    assert meter.update(2.0) == pytest.approx(70)  # one quiet second does not halve it
    assert meter.last == 0


def everything(route: str) -> bool:
    return True


def test_round_robin_takes_sources_in_turn_and_skips_the_empty() -> None:
    singles, job_a, job_b = RouteQueues(), CappedSource(None, 0.0), CappedSource(None, 0.0)
    for n in range(3):
        singles.push("*", f"s{n}")
        job_a.push("*", f"a{n}")
    job_b.push("*", "b0")
    turns = RoundRobin()
    taken = [turns.next([singles, job_a, job_b], everything, 0.0) for _ in range(8)]
    assert taken == ["s0", "a0", "b0", "s1", "a1", "s2", "a2", None]


def test_a_capped_or_paused_job_waits_its_turn() -> None:
    singles, capped = RouteQueues(), CappedSource(2.0, now=0.0)
    for n in range(5):
        capped.push("*", f"c{n}")
    turns = RoundRobin()
    # A second's worth of its cap at once, then nothing until the next release
    # (.5 of the next second: the first two were the release of the slot around .5).
    assert [turns.next([singles, capped], everything, 0.0) for _ in range(3)] == \
        ["c0", "c1", None]
    assert RoundRobin.wait([singles, capped], everything, 0.0) == pytest.approx(1.5)
    assert turns.next([singles, capped], everything, 1.5) == "c2"
    capped.paused = True
    assert turns.next([singles, capped], everything, 5.0) is None
    assert RoundRobin.wait([singles, capped], everything, 5.0) is None


def test_route_queues_give_a_bind_only_what_it_serves() -> None:
    queues = RouteQueues()
    queues.push("a", 1)
    queues.push("b", 2)
    assert queues.pop(lambda route: route == "b") == 2
    assert queues.pop(lambda route: route == "b") is None and queues.size == 1
    assert queues.has(lambda route: route == "a")
