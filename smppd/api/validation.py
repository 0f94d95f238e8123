"""Checking API input. Pure functions: a body in, a ValidMessage or an ApiError
naming the field out. Nothing here touches the network or the store."""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import status as st
from ..checks import ApiError, check_template, recipient, render
from ..ids import bound_for_time, looks_like_id
from ..protocol.segmentation import TextInfo, TooManyParts, describe
from ..store.queries import MessageFilter
from .uploads import SpooledBody

# Alphanumeric sender ids travel as TON 5 in a GSM-7 world: letters, digits, space
# and a few safe marks. '@' is 0x00 in GSM 03.38 and would cut the C-octet string
# on the wire (checklist 33), so it is refused here instead of mangled there.
_ALPHANUMERIC_SENDER = re.compile(r"^[A-Za-z0-9 .\-_&+!?#*%()/:,']{1,11}$")
_NUMERIC_SENDER = re.compile(r"^\+?[0-9]{1,15}$")
# ref_id, params, partner, callback and shorten_links: see `extras`.
MESSAGE_FIELDS = {"to", "from", "text", "ref_id", "params", "partner", "callback",
                  "shorten_links"}
CHANNELS = ("api", "job", "portal")
MAX_TEXT_LENGTH = 5000
MAX_REF_ID_BYTES = 256  # UTF-8
MAX_PARAMS = 20
MAX_PARAM_KEY_LENGTH = 64
MAX_PARAM_VALUE_BYTES = 255  # "under 256 bytes", UTF-8
MAX_PARTNER_LENGTH = 64
# json.loads recurses in C and raises RecursionError some 1,000 levels down (fewer
# when the caller's stack is deep); past this depth a field is named as the culprit.
NESTING_REPORTED = 64
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:]')
_ASCII_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")


@dataclass(frozen=True, slots=True)
class ValidMessage:
    recipient: str  # E.164 digits without '+'
    country: str | None
    sender: str
    text: str
    ref_id: str | None
    params: dict[str, Any] | None
    partner: str | None = None
    callback: str | None = None
    shorten_links: bool = False


@dataclass(frozen=True, slots=True)
class Extras:
    """What a customer attaches to a message or a job beside its text (issue 12): its
    own reference and parameters, echoed in every callback and report; the end
    customer; the callback endpoint; whether links are shortened."""

    ref_id: str | None = None
    params: dict[str, str] | None = None
    partner: str | None = None
    callback: str | None = None
    shorten_links: bool = False


def ref_id(value: Any, field: str = "ref_id") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"expected a string of at most {MAX_REF_ID_BYTES} bytes", field)
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_REF_ID_BYTES:
        raise ApiError(400, f"at most {MAX_REF_ID_BYTES} bytes (UTF-8), got {size}", field)
    _no_surrogates(value, field)
    return value


def _no_surrogates(value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "not valid Unicode text (a lone surrogate)", field) from None


def params(value: Any, field: str = "params") -> dict[str, str] | None:
    """A flat object of up to 20 string values, each under 256 bytes of UTF-8."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "expected a JSON object of string values", field)
    if len(value) > MAX_PARAMS:
        raise ApiError(400, f"at most {MAX_PARAMS} keys, got {len(value)}", field)
    for key, item in value.items():
        where = f"{field}.{key}"
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_PARAM_KEY_LENGTH:
            raise ApiError(400, f"a key has 1 to {MAX_PARAM_KEY_LENGTH} characters", field)
        _no_surrogates(key, field)
        if not isinstance(item, str):
            raise ApiError(400, "expected a string value (params is a flat object of "
                           "strings)", where)
        _no_surrogates(item, where)
        size = len(item.encode("utf-8"))
        if size > MAX_PARAM_VALUE_BYTES:
            raise ApiError(400, f"a value is under 256 bytes (UTF-8), got {size}", where)
    return value


def partner(value: Any, field: str = "partner") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PARTNER_LENGTH:
        raise ApiError(400, f"expected an end-customer id of 1 to {MAX_PARTNER_LENGTH} "
                       "characters", field)
    _no_surrogates(value, field)
    return value


def callback(value: Any, field: str = "callback") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not looks_like_id(value):
        raise ApiError(400, "expected the id of a callback endpoint (POST /v1/callbacks)",
                       field)
    return value


def flag(value: Any, field: str, form: bool = False) -> bool:
    """true/false in JSON; in a form "true", "false", "1", "0" or empty."""
    if isinstance(value, bool):
        return value
    if form and isinstance(value, str) and value.strip().lower() in ("true", "1", "false",
                                                                      "0", ""):
        return value.strip().lower() in ("true", "1")
    if value is None:
        return False
    raise ApiError(400, "expected true or false", field)


def extras(data: dict[str, Any], form: bool = False) -> Extras:
    """The issue-12 fields of a message or job body. In a form every value is text,
    and `params` is a JSON object written as text."""
    raw_params = data.get("params")
    if form:
        data = {name: (value or None) if isinstance(value, str) else value
                for name, value in data.items()}
        raw_params = data.get("params")
        if isinstance(raw_params, str):
            try:
                raw_params = json.loads(raw_params)
            except ValueError:
                raise ApiError(400, "expected a JSON object of string values", "params") \
                    from None
    return Extras(ref_id(data.get("ref_id")), params(raw_params), partner(data.get("partner")),
                  callback(data.get("callback")),
                  flag(data.get("shorten_links"), "shorten_links", form))


def parse_json_object(body: bytes | bytearray | SpooledBody) -> dict[str, Any]:
    """A JSON object, strictly: NaN, Infinity and numbers that overflow a float are
    not JSON (RFC 8259) and would reach the store as nonsense; nesting too deep for
    the parser is a 400 naming the field, not a RecursionError."""
    if isinstance(body, SpooledBody):
        body = bytes(body)  # a big form or CSV sent where JSON is wanted: read, then refused
    try:
        data = _decoder().decode(body.decode(json.detect_encoding(body), "surrogatepass")
                                 if isinstance(body, bytes | bytearray) else body)
    except RecursionError:
        field = _deeply_nested_field(body)
        raise ApiError(400, "nested too deeply", field) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


@functools.cache
def _decoder() -> json.JSONDecoder:
    """One strict decoder for every body: json.loads with these hooks would build a
    new JSONDecoder (and its scanner) per request (issue 14: intake CPU)."""
    return json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _deeply_nested_field(body: bytes) -> str | None:
    """The top-level key under which the body nests past NESTING_REPORTED levels.
    A scan of strings and brackets only (the C regex skips the rest), run only on
    the error path."""
    depth, key, last = 0, None, b""
    for token in _JSON_TOKEN.finditer(body):
        text = token.group()
        if text in (b"{", b"["):
            depth += 1
            if depth > NESTING_REPORTED:
                return key
        elif text in (b"}", b"]"):
            depth -= 1
        elif text == b":":
            if depth == 1:
                key = _json_string(last)
        else:
            last = text
    return key


def _json_string(raw: bytes) -> str:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip('"')[:64]
    return value if isinstance(value, str) else str(value)


def ascii_int(text: str, field: str, low: int, high: int) -> int:
    """A whole number written in ASCII digits. str.isdigit() is also true of '²'
    (which int() refuses: a 500) and of '١' (which int() reads as 1)."""
    if len(text) > 18 or not _ASCII_DIGITS.fullmatch(text) or not low <= int(text) <= high:
        raise ApiError(400, f"expected a whole number {low}..{high}", field)
    return int(text)


def sender(value: Any, field: str = "from") -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, "expected a sender id: up to 11 letters and digits, or a number",
                       field)
    if _NUMERIC_SENDER.match(value):
        return value
    if value.strip() != value:
        raise ApiError(400, "a sender id cannot start or end with a space", field)
    if _ALPHANUMERIC_SENDER.match(value) and any(ch.isalpha() for ch in value):
        return value
    if len(value) > 11:
        raise ApiError(400, f"an alphanumeric sender id has at most 11 characters, got "
                       f"{len(value)}", field)
    bad = sorted({ch for ch in value if not _ALPHANUMERIC_SENDER.match(ch)})
    if bad:
        raise ApiError(400, "a sender id cannot contain " + " ".join(repr(ch) for ch in bad),
                       field)
    raise ApiError(400, "expected up to 11 letters and digits, or a number of up to 15 "
                   "digits", field)


def message(data: dict[str, Any]) -> ValidMessage:
    unknown = sorted(set(data) - MESSAGE_FIELDS)
    if unknown:
        raise ApiError(400, "unknown field (expected: " + ", ".join(sorted(MESSAGE_FIELDS))
                       + ")", unknown[0])
    for required in ("to", "from", "text"):
        if required not in data:
            raise ApiError(400, "missing required field", required)
    digits, country = recipient(data["to"])
    source = sender(data["from"])
    text = data["text"]
    if not isinstance(text, str) or not text:
        raise ApiError(400, "expected non-empty text", "text")
    if len(text) > MAX_TEXT_LENGTH:
        raise ApiError(400, f"at most {MAX_TEXT_LENGTH} characters, got {len(text)}", "text")
    more = extras(data)
    return ValidMessage(digits, country, source, text, more.ref_id, more.params, more.partner,
                        more.callback, more.shorten_links)


def text_info(text: str, profile: Any, policy: Any) -> TextInfo:
    try:
        return _described(text, profile, policy)
    except TooManyParts as exc:
        raise ApiError(400, f"the text needs {exc.needed} SMS parts, at most {exc.allowed} "
                       "are allowed", "text") from None
    except ValueError as exc:
        raise ApiError(400, str(exc), "text") from None


def _time(value: str, field: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"expected an ISO 8601 time such as 2026-11-22T10:00:00Z, got "
                       f"{value!r}", field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Ids hold the time in 48 bits of milliseconds: 1970 to the year 10889.
    return min(max(moment.timestamp(), 0.0), _LAST_ID_SECOND)


@functools.lru_cache(maxsize=256)
def _described(text: str, profile: Any, policy: Any) -> TextInfo:
    """describe(), remembered: a campaign sends one text to many numbers (every row of
    a job without placeholders, every POST of an alert), and working out its encoding
    and parts was a tenth of a CSV row's CPU. Profiles and policies are frozen, so
    they are safe keys; a text that cannot be sent raises and is not remembered."""
    return describe(text, profile, policy)


_LAST_ID_SECOND = (2 ** 48 - 1) / 1000


LIST_FIELDS = {"sender", "recipient", "status", "since", "until", "job", "cursor", "limit",
               "channel", "ref_id", "partner"}


def list_query(args: dict[str, str]) -> tuple[MessageFilter, str | None, int]:
    unknown = sorted(set(args) - LIST_FIELDS)
    if unknown:
        raise ApiError(400, "unknown query parameter (expected: "
                       + ", ".join(sorted(LIST_FIELDS)) + ")", unknown[0])
    status = args.get("status")
    if status is not None and status not in st.ALL:
        raise ApiError(400, f"expected one of {', '.join(st.ALL)}", "status")
    to = args.get("recipient")
    digits = None
    if to is not None:
        digits = to.strip().lstrip("+")
        if not _ASCII_DIGITS.fullmatch(digits) or len(digits) > 15:
            raise ApiError(400, "expected a phone number", "recipient")
    cursor = args.get("cursor")
    if cursor is not None and not looks_like_id(cursor):
        raise ApiError(400, "not a cursor this API gave out", "cursor")
    limit = ascii_int(args.get("limit", "100"), "limit", 1, 1000)
    since = args.get("since")
    until = args.get("until")
    channel = args.get("channel")  # issue 10
    if channel is not None and channel not in CHANNELS:
        raise ApiError(400, f"expected one of {', '.join(CHANNELS)}", "channel")
    where = MessageFilter(
        channel=channel, ref_id=ref_id(args["ref_id"]) if args.get("ref_id") else None,
        partner=partner(args["partner"]) if "partner" in args else None,
        sender=args.get("sender"), recipient=digits, status=status, job=args.get("job"),
        min_id=bound_for_time(_time(since, "since")) if since else None,
        max_id=bound_for_time(_time(until, "until"), upper=True) if until else None)
    return where, cursor, limit


# Jobs -------------------------------------------------------------------------------

JOB_FIELDS = {"name", "from", "text", "recipients", "group", "start_at", "throughput",
              "ref_id", "params", "partner", "callback", "shorten_links", "description"}
# Per recipient: `ref_id`, and `params` as an object (JSON) or as columns named
# `param.<key>` (CSV or JSON), merged over the job's own params.
PARAM_COLUMN = "param."
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
MAX_ROW_ERRORS = 100


@dataclass(frozen=True, slots=True)
class ValidJob:
    name: str
    sender: str
    template: str
    recipients: Any  # Iterable[(row number, number or {"to", fields...})]
    start_at: float | None
    throughput: float | None
    group: str | None = None  # a contact group instead of recipients (smppd.inbound)
    fingerprint: str | None = None  # of the request, when it has an Idempotency-Key
    description: str | None = None  # for finding the job again (GET /v1/jobs?description=)
    extras: Extras = Extras()


def job(data: dict[str, Any], rows: Any = None) -> ValidJob:
    """A job from JSON (`recipients` in the body) or from a form whose CSV file gives
    `rows` (an iterable of (line number, row))."""
    if rows is not None:
        data = dict(data, recipients=rows)
    unknown = sorted(set(data) - JOB_FIELDS)
    if unknown:
        raise ApiError(400, "unknown field (expected: " + ", ".join(sorted(JOB_FIELDS)) + ")",
                       unknown[0])
    group = data.get("group")
    if group is not None:
        if "recipients" in data and rows is None:
            raise ApiError(400, "give either recipients or a contact group", "group")
        if not isinstance(group, str) or not group or len(group) > 64:
            raise ApiError(400, "expected the name of a contact group", "group")
        data = dict(data, recipients=())  # the group's members, read when the job is built
    for required in ("name", "from", "text", "recipients"):
        if required not in data:
            raise ApiError(400, "missing required field", required)
    name = data["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ApiError(400, "expected a name of 1 to 128 characters", "name")
    template = data["text"]
    if not isinstance(template, str) or not template:
        raise ApiError(400, "expected non-empty text", "text")
    check_template(template)
    recipients = data["recipients"]
    if rows is None and group is None:
        if not isinstance(recipients, list) or not recipients:
            raise ApiError(400, "expected a non-empty list of numbers or objects with 'to'",
                           "recipients")
        recipients = enumerate(recipients, start=1)
    start_at = data.get("start_at") or None
    if start_at is not None:
        if not isinstance(start_at, str):
            raise ApiError(400, "expected an ISO 8601 time", "start_at")
        start_at = _time(start_at, "start_at")
    throughput = data.get("throughput")
    if isinstance(throughput, str) and throughput.strip():  # a form field
        # float() alone would also take 'nan', 'inf', '1_000' and Arabic-Indic digits.
        if not _DECIMAL.fullmatch(throughput.strip()):
            raise ApiError(400, "expected messages per second, more than 0", "throughput")
        throughput = float(throughput)
    elif isinstance(throughput, str):
        throughput = None
    if throughput is not None and (isinstance(throughput, bool)
                                   or not isinstance(throughput, int | float)
                                   or not math.isfinite(throughput) or throughput <= 0):
        raise ApiError(400, "expected messages per second, more than 0", "throughput")
    description = data.get("description") or None  # issue 10
    if description is not None and (not isinstance(description, str)
                                    or len(description) > 256):
        raise ApiError(400, "expected a description of at most 256 characters",
                       "description")
    return ValidJob(name.strip(), sender(data["from"]), template, recipients, start_at,
                    float(throughput) if throughput is not None else None, group,
                    extras=extras(data, form=rows is not None), description=description)


@dataclass(frozen=True, slots=True)
class JobRow:
    recipient: str  # E.164 digits without '+'
    country: str | None
    text: str
    ref_id: str | None
    params: dict[str, str] | None


def job_row(row: Any, template: str, base: Extras = Extras()) -> JobRow:
    """One recipient of a job, with its own ref_id and params over the job's;
    ApiError names the problem (the caller adds the row number)."""
    if isinstance(row, str):
        fields: dict[str, Any] = {"to": row}
    elif isinstance(row, dict):
        fields = row
    else:
        raise ApiError(400, getattr(row, "reason", "expected a number or an object with "
                                                   "'to'"), "to")
    if "to" not in fields:
        raise ApiError(400, "missing required field", "to")
    digits, region = recipient(fields["to"])
    text = render(template, fields)
    if not text:
        raise ApiError(400, "the text is empty for this row", "text")
    if len(text) > MAX_TEXT_LENGTH:
        raise ApiError(400, f"at most {MAX_TEXT_LENGTH} characters, got {len(text)}", "text")
    own_ref = fields.get("ref_id") or None  # an empty CSV cell: the job's
    own_params = _row_params(fields)
    merged = params({**(base.params or {}), **own_params}) if own_params else base.params
    return JobRow(digits, region, text, ref_id(own_ref) if own_ref is not None
                  else base.ref_id, merged)


def _row_params(fields: dict[str, Any]) -> dict[str, Any]:
    found = dict(params(fields["params"])) if isinstance(fields.get("params"), dict) else {}
    if "params" in fields and not isinstance(fields["params"], dict | None):
        raise ApiError(400, "expected a JSON object of string values", "params")
    for name, value in fields.items():
        if name.startswith(PARAM_COLUMN) and value not in (None, ""):
            found[name[len(PARAM_COLUMN):]] = value
    return found
