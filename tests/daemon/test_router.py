"""Routes: longest prefix, failover in order of preference, text settings per route,
and what becomes of a stored message whose route left the configuration."""

from __future__ import annotations

from smppd import config
from smppd.daemon.router import ANY_SMSC, NO_ROUTE, Router
from smppd.protocol.segmentation import SplitMode


def _smsc(name: str, **kw: object) -> config.SmscSettings:
    return config.SmscSettings(name=name, host="127.0.0.1", port=2775, system_id="a",
                               password="b", **kw)  # type: ignore[arg-type]


ROUTER = Router.of({"48": ("a",), "4860": ("b", "a")},
                   [_smsc("a"), _smsc("b", split=SplitMode.SAR, max_parts=3)])


def test_the_longest_prefix_wins_and_unrouted_numbers_have_no_route() -> None:
    assert ROUTER.route_for("48601234567") == "b|a"
    assert ROUTER.route_for("48501234567") == "a"
    assert ROUTER.route_for("12025550123") == NO_ROUTE
    assert Router.of({}, [_smsc("a")]).route_for("12025550123") == ANY_SMSC


def test_text_is_cut_by_the_routes_first_smsc() -> None:
    assert ROUTER.text_for("b|a").policy.mode is SplitMode.SAR
    assert ROUTER.text_for("b|a").policy.max_parts == 3
    assert ROUTER.text_for("a").policy.mode is SplitMode.UDH
    assert ROUTER.text_for("gone") == ROUTER.default_text


def test_failover_goes_to_the_first_bound_smsc_of_the_route() -> None:
    bound = {"a": True, "b": True}
    serves_a = ROUTER.serves("a", lambda name: bound[name])
    serves_b = ROUTER.serves("b", lambda name: bound[name])
    assert serves_b("b|a") and not serves_a("b|a")
    bound["b"] = False
    assert serves_a("b|a")
    assert serves_a(ANY_SMSC) and serves_b(ANY_SMSC)
    assert not serves_b("a")


def test_a_stored_route_that_left_the_configuration_is_routed_again() -> None:
    assert ROUTER.resolve("b|a", "48601234567") == "b|a"  # still known
    assert ROUTER.resolve("a", "48601234567") == "a"  # an SMSC by name
    assert ROUTER.resolve("old|gone", "48601234567") == "b|a"  # by today's routes
    assert ROUTER.resolve("old", "12025550123") == ANY_SMSC  # accepted, so it is sent
    assert ROUTER.resolve(None, "48501234567") == "a"
