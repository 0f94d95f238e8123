"""Property tests: any JSON body for the inbound API is either accepted or refused
with an ApiError naming a field, never another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from smppd.api import inbound_bodies as bodies
from smppd.api.validation import ApiError

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
_keys = st.sampled_from(["number", "prefix", "from", "until", "auto_reply", "forward", "phone",
                         "first_name", "email", "groups", "pool", "codes", "name",
                         "starts_at", "ends_at", "options", "replies", "limit",
                         "discount_pool", "keyword", "reply", "text", "sms", "url"])
_bodies = st.dictionaries(_keys, _json, max_size=8)


def _only_api_errors(check: Any, body: Any) -> None:
    try:
        check(body)
    except ApiError as exc:
        assert exc.status == 400 and exc.message


@settings(max_examples=300, deadline=None)
@given(_bodies)
def test_every_body_checker_accepts_or_names_the_problem(body: dict[str, Any]) -> None:
    for check in (bodies.reservation, bodies.settings, bodies.discount_codes, bodies.poll,
                  bodies.contact, bodies.contacts):
        _only_api_errors(check, body)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_contacts_take_any_json(body: Any) -> None:
    _only_api_errors(bodies.contacts, body)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*sorted(bodies.INBOUND_QUERY), "x"]),
                       st.lists(st.text(max_size=30), min_size=1, max_size=2), max_size=6))
def test_inbound_queries(args: dict[str, list[str]]) -> None:
    def check(query: dict[str, list[str]]) -> None:
        single = bodies.query(query, bodies.INBOUND_QUERY)
        bodies.inbound_filter(single)
        bodies.limit(single)
        bodies.int_cursor(single)

    _only_api_errors(check, args)
