"""API input checks, without a server: numbers, sender ids, list queries."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from smppd.api import validation
from smppd.api.validation import ApiError


def _reference(text: str) -> tuple[str, str | None] | None:
    """What phonenumbers alone says: parse, is_valid_number, E.164 digits and region."""
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:],
            phonenumbers.region_code_for_number(number))


@given(s.text(alphabet="0123456789", min_size=4, max_size=15))
@settings(max_examples=3000)
def test_recipient_fast_path_agrees_with_phonenumbers(digits: str) -> None:
    """The strict E.164 shortcut accepts exactly what phonenumbers.parse +
    is_valid_number accept as written; what phonenumbers would only accept after
    rewriting it (dropping a trunk prefix) is refused, with the suggestion."""
    text = "+" + digits
    try:
        ours: tuple[str, str | None] | None = validation.recipient(text)
    except ApiError as exc:
        ours = None
        reference = _reference(text)
        if reference is not None:
            assert reference[0] != digits and f"did you mean +{reference[0]}" in exc.message
        return
    assert ours == _reference(text)


@given(s.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
@settings(max_examples=300)
def test_every_region_example_number_is_accepted(region: str) -> None:
    example = phonenumbers.example_number(region)
    if example is None:
        return
    text = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert validation.recipient(text) == _reference(text)


@pytest.mark.parametrize(("text", "digits", "region"), [
    ("+48500100200", "48500100200", "PL"),
    ("+48 500 100 200", "48500100200", "PL"),
    ("+1 (202) 555-0123", "12025550123", "US"),
    ("+390612345678", "390612345678", "IT"),
])
def test_valid_recipients(text: str, digits: str, region: str) -> None:
    assert validation.recipient(text) == (digits, region)


@pytest.mark.parametrize("text", ["48500100200", "+4850010020", "+", "+abc", "", " ",
                                  "+999123456789", "+48500100200999999"])
def test_invalid_recipients_name_the_field(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        validation.recipient(text)
    assert (caught.value.status, caught.value.field) == (400, "to")


@pytest.mark.parametrize("value", ["Acme", "ACME Shop", "Shop-1", "12345", "+48500100200",
                                   "A.B&C", "x" * 11])
def test_sender_ids_that_pass(value: str) -> None:
    assert validation.sender(value) == value


@pytest.mark.parametrize(("value", "why"), [
    ("Shop@1", "'@'"), ("x" * 12, "at most 11"), ("", "sender id"), (" Acme", "space"),
    ("Ünïcödé", "cannot contain"), ("1234567890123456", "at most 11"), (None, "sender id"),
    ("a\x00b", "cannot contain"),
])
def test_sender_ids_that_fail_say_why(value: object, why: str) -> None:
    with pytest.raises(ApiError) as caught:
        validation.sender(value)
    assert caught.value.field == "from" and why in caught.value.message


@pytest.mark.parametrize(("body", "field"), [
    (b"", None), (b"\xff\xfe", None), (b"null", None), (b'"text"', None), (b"{", None),
])
def test_bodies_that_are_not_json_objects(body: bytes, field: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        validation.parse_json_object(body)
    assert caught.value.status == 400 and caught.value.field == field


@pytest.mark.parametrize(("args", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "x"}, "limit"),
    ({"cursor": "zz"}, "cursor"), ({"status": "sent"}, "status"),
    ({"recipient": "abc"}, "recipient"), ({"until": "soon"}, "until"), ({"page": "2"}, "page"),
])
def test_list_queries_that_fail_name_the_parameter(args: dict[str, str], field: str) -> None:
    with pytest.raises(ApiError) as caught:
        validation.list_query(args)
    assert caught.value.field == field


def test_list_query_time_bounds_become_id_bounds() -> None:
    where, cursor, limit = validation.list_query(
        {"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00+01:00",
         "recipient": "+48500100200", "limit": "5"})
    assert where.min_id is not None and where.max_id is not None
    assert where.min_id < where.max_id and where.recipient == "48500100200"
    assert (cursor, limit) == (None, 5)


_JSON = s.recursive(s.none() | s.booleans() | s.integers() | s.floats(allow_nan=False)
                    | s.text(max_size=20),
                    lambda inner: s.lists(inner, max_size=4)
                    | s.dictionaries(s.text(max_size=8), inner, max_size=4), max_leaves=12)
_FIELDS = s.sampled_from(["to", "from", "text", "ref_id", "params", "name", "recipients",
                          "start_at", "throughput", "x"])


@given(s.dictionaries(_FIELDS, _JSON | s.just("+48500100200") | s.just("Acme"), max_size=7))
@settings(max_examples=400)
def test_any_json_body_is_accepted_or_refused_naming_a_field(body: dict[str, object]) -> None:
    """Message and job bodies: whatever JSON arrives, the answer is a valid request or
    an ApiError (a 400 with a field), never another exception."""
    for check in (validation.message, validation.job):
        try:
            check(body)
        except ApiError as exc:
            assert exc.status == 400 and exc.field


@given(s.text(max_size=60), s.dictionaries(s.text(max_size=6), s.text(max_size=6) | s.integers(),
                                           max_size=4))
@settings(max_examples=400)
def test_templates_render_or_name_the_problem(template: str, fields: dict[str, object]) -> None:
    try:
        validation.check_template(template)
        validation.render(template, fields)
    except ApiError as exc:
        assert exc.status == 400 and exc.field
