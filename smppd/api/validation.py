"""Checking API input. Pure functions: a body in, a ValidMessage or an ApiError
naming the field out. Nothing here touches the network or the store."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import status as st
from ..checks import ApiError, check_template, recipient, render
from ..ids import bound_for_time, looks_like_id
from ..protocol.segmentation import TextInfo, TooManyParts, describe
from ..store.queries import MessageFilter

# Alphanumeric sender ids travel as TON 5 in a GSM-7 world: letters, digits, space
# and a few safe marks. '@' is 0x00 in GSM 03.38 and would cut the C-octet string
# on the wire (checklist 33), so it is refused here instead of mangled there.
_ALPHANUMERIC_SENDER = re.compile(r"^[A-Za-z0-9 .\-_&+!?#*%()/:,']{1,11}$")
_NUMERIC_SENDER = re.compile(r"^\+?[0-9]{1,15}$")
MESSAGE_FIELDS = {"to", "from", "text", "ref_id", "params"}
MAX_TEXT_LENGTH = 5000
MAX_PARAMS_BYTES = 4096


@dataclass(frozen=True, slots=True)
class ValidMessage:
    recipient: str  # E.164 digits without '+'
    country: str | None
    sender: str
    text: str
    ref_id: str | None
    params: dict[str, Any] | None


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


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
    ref_id = data.get("ref_id")
    if ref_id is not None and (not isinstance(ref_id, str) or len(ref_id) > 128):
        raise ApiError(400, "expected a string of at most 128 characters", "ref_id")
    params = data.get("params")
    if params is not None:
        if not isinstance(params, dict):
            raise ApiError(400, "expected a JSON object", "params")
        if len(json.dumps(params)) > MAX_PARAMS_BYTES:
            raise ApiError(400, f"at most {MAX_PARAMS_BYTES} bytes of JSON", "params")
    return ValidMessage(digits, country, source, text, ref_id, params)


def text_info(text: str, profile: Any, policy: Any) -> TextInfo:
    try:
        return describe(text, profile, policy)
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
    return moment.timestamp()


LIST_FIELDS = {"sender", "recipient", "status", "since", "until", "job", "cursor", "limit",
               "channel", "ref_id"}
CHANNELS = ("api", "job", "portal")


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
        if not digits.isdigit():
            raise ApiError(400, "expected a phone number", "recipient")
    cursor = args.get("cursor")
    if cursor is not None and not looks_like_id(cursor):
        raise ApiError(400, "not a cursor this API gave out", "cursor")
    channel = args.get("channel")
    if channel is not None and channel not in CHANNELS:
        raise ApiError(400, f"expected one of {', '.join(CHANNELS)}", "channel")
    ref_id = args.get("ref_id")
    if ref_id is not None and (not ref_id or len(ref_id) > 128):
        raise ApiError(400, "expected a reference of 1 to 128 characters", "ref_id")
    limit_text = args.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise ApiError(400, "expected a whole number 1..1000", "limit")
    since = args.get("since")
    until = args.get("until")
    where = MessageFilter(
        sender=args.get("sender"), recipient=digits, status=status, job=args.get("job"),
        min_id=bound_for_time(_time(since, "since")) if since else None,
        max_id=bound_for_time(_time(until, "until"), upper=True) if until else None,
        channel=channel, ref_id=ref_id)
    return where, cursor, int(limit_text)


# Jobs -------------------------------------------------------------------------------

JOB_FIELDS = {"name", "from", "text", "recipients", "group", "start_at", "throughput"}
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
        try:
            throughput = float(throughput)
        except ValueError:
            raise ApiError(400, "expected messages per second, more than 0",
                           "throughput") from None
    elif isinstance(throughput, str):
        throughput = None
    if throughput is not None and (isinstance(throughput, bool)
                                   or not isinstance(throughput, int | float)
                                   or throughput <= 0):
        raise ApiError(400, "expected messages per second, more than 0", "throughput")
    return ValidJob(name.strip(), sender(data["from"]), template, recipients, start_at,
                    float(throughput) if throughput is not None else None, group)


def job_row(row: Any, template: str) -> tuple[str, str | None, str]:
    """One recipient of a job: (E.164 digits, region, rendered text); ApiError names
    the problem (the caller adds the row number)."""
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
    return digits, region, text
