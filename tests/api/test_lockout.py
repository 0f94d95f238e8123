"""Failed authentication per address, with a Clock: the sliding window, IPv6 /64s,
IPv4-mapped addresses, memory bounds."""

from __future__ import annotations

from twisted.internet.task import Clock

from smppd.api.lockout import AuthLockout, address_key


def test_after_max_failures_the_address_waits_for_the_oldest_to_age_out() -> None:
    clock = Clock()
    lockout = AuthLockout(clock, max_failures=3, window=60)
    for _ in range(3):
        assert lockout.retry_after("10.0.0.1") is None
        lockout.failed("10.0.0.1")
        clock.advance(10)
    assert lockout.locked("10.0.0.1")
    assert lockout.retry_after("10.0.0.1") == 30  # the first failure was 30 s ago
    assert lockout.retry_after("10.0.0.2") is None  # per address
    clock.advance(29.5)
    assert lockout.retry_after("10.0.0.1") == 1
    clock.advance(0.5)
    assert lockout.retry_after("10.0.0.1") is None  # one more try, not three
    lockout.failed("10.0.0.1")
    assert lockout.retry_after("10.0.0.1") == 10
    assert (lockout.failures_total, lockout.refused_total) == (4, 3)


def test_ipv6_counts_per_64_and_ipv4_mapped_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") \
        == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("not an address") == "not an address"
    clock = Clock()
    lockout = AuthLockout(clock, max_failures=2, window=60)
    lockout.failed("2001:db8:1:2::1")
    lockout.failed("2001:db8:1:2::2")
    assert lockout.retry_after("2001:db8:1:2::3") is not None
    lockout.failed("::ffff:192.0.2.7")
    lockout.failed("::ffff:192.0.2.7")
    assert lockout.retry_after("::ffff:192.0.2.8") is None


def test_memory_is_bounded_by_max_addresses() -> None:
    lockout = AuthLockout(Clock(), max_failures=5, window=60, max_addresses=100)
    for n in range(10_000):
        lockout.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert len(lockout._failures) == 100


def test_a_reload_that_changes_the_limit_applies_to_known_addresses() -> None:
    lockout = AuthLockout(Clock(), max_failures=2, window=60)
    lockout.failed("10.0.0.1")
    lockout.max_failures = 3
    lockout.failed("10.0.0.1")
    assert lockout.retry_after("10.0.0.1") is None
    lockout.failed("10.0.0.1")
    assert lockout.retry_after("10.0.0.1") is not None
