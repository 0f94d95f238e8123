"""API input checks, without a server: numbers, sender ids, list queries."""

from __future__ import annotations

import json

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


def test_a_template_renders_anew_with_each_rows_fields() -> None:
    """Templates are cut into pieces once and remembered; each render still fills
    the fields it is given, and the escapes stay literal braces."""
    template = "{{name}} is {name}, code {code}"
    assert validation.render(template, {"name": "Ann", "code": 1}) == "{name} is Ann, code 1"
    assert validation.render(template, {"name": "Bob", "code": "X"}) == "{name} is Bob, code X"
    try:
        validation.render(template, {"name": "Cy"})
    except ApiError as exc:
        assert exc.field == "code"
    else:
        raise AssertionError("a missing field must be named")


@given(s.text(max_size=60), s.dictionaries(s.text(max_size=6), s.text(max_size=6) | s.integers(),
                                           max_size=4))
@settings(max_examples=400)
def test_templates_render_or_name_the_problem(template: str, fields: dict[str, object]) -> None:
    try:
        validation.check_template(template)
        validation.render(template, fields)
    except ApiError as exc:
        assert exc.status == 400 and exc.field


# Input that once ended in a 500 or a wrong answer ------------------------------------


@pytest.mark.parametrize("limit", ["²", "١", "١٠", "٣", "１", "1_0", " 5", "5 ", "+5", "-1",
                                   "9" * 5000, "0x10", ""])
def test_limit_takes_ascii_digits_only(limit: str) -> None:
    """'²'.isdigit() is true and int('²') fails (a 500); int('١') is 1 (a wrong
    answer). Only ASCII digits are numbers in a query string."""
    with pytest.raises(ApiError) as caught:
        validation.list_query({"limit": limit})
    assert (caught.value.status, caught.value.field) == (400, "limit")


@pytest.mark.parametrize("recipient", ["+４８５００１００２００", "+٤٨٥٠٠١٠٠٢٠٠", "48²", "4" * 16])
def test_recipient_filter_takes_ascii_digits_only(recipient: str) -> None:
    with pytest.raises(ApiError) as caught:
        validation.list_query({"recipient": recipient})
    assert caught.value.field == "recipient"


def test_a_number_in_other_digits_is_asked_about_not_read() -> None:
    with pytest.raises(ApiError) as caught:
        validation.recipient("+٤٨٥٠٠١٠٠٢٠٠")
    assert caught.value.field == "to"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1_000", "١٢", "1e400",
                                   "9" * 400, "0", "-3", "1,5", "x"])
def test_form_throughput_is_a_plain_positive_decimal(value: str) -> None:
    with pytest.raises(ApiError) as caught:
        validation.job({"name": "n", "from": "Acme", "text": "t", "throughput": value},
                       rows=iter([]))
    assert caught.value.field == "throughput"


@pytest.mark.parametrize("body", [b'{"throughput": NaN}', b'{"throughput": Infinity}',
                                  b'{"throughput": -Infinity}', b'{"throughput": 1e999}'])
def test_json_without_nan_or_infinity(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        validation.parse_json_object(body)
    assert caught.value.status == 400 and "JSON" in caught.value.message


@pytest.mark.parametrize("depth", [17, 200, 5000, 100_000])
def test_deeply_nested_params_are_a_400_naming_params(depth: int) -> None:
    """Within the parser's reach the flat-object rule names the key (params.a); past
    it the parser's own limit names the top-level field. Never a RecursionError."""
    body = (b'{"to": "+48500100200", "from": "Acme", "text": "x", "params": '
            + b'{"a": [' * depth + b"1" + b"]}" * depth + b"}")
    with pytest.raises(ApiError) as caught:
        validation.message(validation.parse_json_object(body))
    assert caught.value.status == 400
    assert caught.value.field == ("params.a" if depth < 500 else "params")


def test_params_one_level_deep_are_refused_naming_the_key() -> None:
    with pytest.raises(ApiError) as caught:
        validation.message({"to": "+48500100200", "from": "Acme", "text": "x",
                            "params": {"shop": "north", "order": {"id": "7"}}})
    assert (caught.value.status, caught.value.field) == (400, "params.order")


@pytest.mark.parametrize("depth", [5000, 100_000])
def test_a_deeply_nested_job_body_is_a_400_naming_the_field(depth: int) -> None:
    body = (b'{"name": "n", "from": "Acme", "text": "t", "recipients": '
            + b"[" * depth + b"]" * depth + b"}")
    with pytest.raises(ApiError) as caught:
        validation.job(validation.parse_json_object(body))
    assert (caught.value.status, caught.value.field) == (400, "recipients")


@pytest.mark.parametrize(("value", "field"), [("0001-01-01T00:00:00+01:00", "since"),
                                              ("9999-12-31T23:59:59-23:59", "until")])
def test_times_far_out_stay_inside_the_id_range(value: str, field: str) -> None:
    where, _, _ = validation.list_query({field: value})
    bound = where.min_id or where.max_id
    assert bound is not None and len(bound) == 32 and not bound.startswith("-")


_TEXT = s.text(s.characters(codec="utf-8"), max_size=12)


@given(s.dictionaries(s.sampled_from(sorted(validation.LIST_FIELDS)) | _TEXT, _TEXT,
                      max_size=6))
@settings(max_examples=600)
def test_any_list_query_is_answered_or_refused_naming_a_parameter(
        args: dict[str, str]) -> None:
    try:
        validation.list_query(args)
    except ApiError as exc:
        assert exc.status == 400 and exc.field in args


_NESTED = s.integers(min_value=1, max_value=3000).map(
    lambda depth: json_nested(depth))


def json_nested(depth: int) -> object:
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@given(s.dictionaries(_FIELDS, _JSON | _NESTED | s.just("+48500100200") | s.just("Acme")
                      | s.sampled_from([float("nan"), float("inf"), 10 ** 400, -0.0]),
                      max_size=7))
@settings(max_examples=300)
def test_any_body_through_the_parser_is_accepted_or_refused_naming_a_field(
        body: dict[str, object]) -> None:
    """Serialised as any client would (json.dumps writes NaN and Infinity, and may
    nest deeper than Python can read back), then parsed and checked as the API does."""
    try:
        raw = json.dumps(body).encode()
    except (RecursionError, ValueError):
        return
    for check in (validation.message, validation.job):
        try:
            check(validation.parse_json_object(raw))
        except ApiError as exc:
            assert exc.status == 400
