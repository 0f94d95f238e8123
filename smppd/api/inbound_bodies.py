"""Checking the inbound API's input (numbers, settings, contacts, codes, polls):
pure functions, a body in, checked values or an ApiError naming the field out."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..checks import inbound_sender
from ..checks import pool_number as number
from ..inbound import polls as pl
from ..inbound.text import check_prefix, fold
from ..store.inbound_ops import Contact
from ..store.inbound_queries import InboundFilter
from .validation import ApiError, check_template, recipient, sender
from .validation import _time as parse_time

_EMAIL = re.compile(r"^[^@\s,;<>\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}$|"
                    r"^[^@\s,;<>\"]{1,64}@(?:localhost|127\.0\.0\.1)$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NAME = re.compile(r"^[^\x00-\x1f]{1,64}$")
MAX_FORWARDS = 10
MAX_OPTIONS = 50
MAX_CODES = 100_000


def _unknown(data: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ApiError(400, "unknown field (expected: " + ", ".join(sorted(known)) + ")",
                       unknown[0])


def prefix(value: Any, field: str = "prefix") -> tuple[str, str]:
    """(prefix as given, folded key)."""
    try:
        checked = check_prefix(value)
    except ValueError as exc:
        raise ApiError(400, str(exc), field) from None
    return checked, fold(checked)


def optional_prefix(value: Any, field: str = "prefix") -> tuple[str | None, str]:
    if value is None or value == "":
        return None, ""
    return prefix(value, field)


def _optional_time(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "expected an ISO 8601 time such as 2026-12-01T00:00:00Z", name)
    return parse_time(value, name)


@dataclass(frozen=True, slots=True)
class Reservation:
    number: str
    prefix: str | None
    prefix_key: str
    starts_at: float | None
    ends_at: float | None


def reservation(data: dict[str, Any]) -> Reservation:
    _unknown(data, {"number", "prefix", "from", "until"})
    if "number" not in data:
        raise ApiError(400, "missing required field", "number")
    digits = number(data["number"])
    given, key = optional_prefix(data.get("prefix"))
    starts, ends = _optional_time(data, "from"), _optional_time(data, "until")
    if starts is not None and ends is not None and ends <= starts:
        raise ApiError(400, "the period ends before it starts", "until")
    return Reservation(digits, given, key, starts, ends)


@dataclass(frozen=True, slots=True)
class Settings:
    auto_reply_from: str | None
    auto_reply_text: str | None
    email: tuple[str, ...]
    sms: tuple[str, ...]
    url: str | None


def settings(data: dict[str, Any]) -> Settings:
    _unknown(data, {"auto_reply", "forward"})
    reply_from = reply_text = None
    auto_reply = data.get("auto_reply")
    if auto_reply is not None:
        if not isinstance(auto_reply, dict):
            raise ApiError(400, "expected {\"from\", \"text\"} or null", "auto_reply")
        _unknown(auto_reply, {"from", "text"})
        if "from" not in auto_reply:
            raise ApiError(400, "missing required field", "auto_reply.from")
        reply_from = sender(auto_reply["from"], "auto_reply.from")
        reply_text = auto_reply.get("text")
        if not isinstance(reply_text, str) or not reply_text.strip() or len(reply_text) > 1000:
            raise ApiError(400, "expected text of 1 to 1000 characters", "auto_reply.text")
    forward = data.get("forward")
    forward = {} if forward is None else forward
    if not isinstance(forward, dict):
        raise ApiError(400, "expected {\"email\": [...], \"sms\": [...], \"url\": ...}",
                       "forward")
    _unknown(forward, {"email", "sms", "url"})
    emails = tuple(email(value, f"forward.email[{i}]")
                   for i, value in enumerate(_list(forward, "email", "forward.email")))
    sms = tuple(recipient(value, f"forward.sms[{i}]")[0]
                for i, value in enumerate(_list(forward, "sms", "forward.sms")))
    return Settings(reply_from, reply_text, emails, sms, url(forward.get("url"), "forward.url"))


def _list(data: dict[str, Any], name: str, field: str) -> list[Any]:
    value = data.get(name) or []
    if not isinstance(value, list):
        raise ApiError(400, "expected a list", field)
    if len(value) > MAX_FORWARDS:
        raise ApiError(400, f"at most {MAX_FORWARDS}", field)
    return value


def email(value: Any, field: str = "email") -> str:
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.match(value.strip()):
        raise ApiError(400, f"expected an e-mail address, got {value!r}", field)
    return value.strip()


def url(value: Any, field: str) -> str | None:
    """An http(s) URL with a host; the webhook outbox (issue 12) posts to it."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise ApiError(400, "expected an https:// URL", field)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ApiError(400, f"expected an https:// URL, got {value!r}", field)
    if any(ch.isspace() for ch in value):
        raise ApiError(400, "a URL cannot contain spaces", field)
    return value


# Contacts ---------------------------------------------------------------------------------

CONTACT_FIELDS = {"phone", "first_name", "last_name", "email", "groups"}


def group_name(value: Any, field: str = "group") -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value.strip() != value:
        raise ApiError(400, "expected a group name of 1-64 characters", field)
    return value


def contact(data: Any, field_prefix: str = "") -> Contact:
    if not isinstance(data, dict):
        raise ApiError(400, "expected an object with 'phone'", field_prefix or None)
    f = (lambda name: f"{field_prefix}.{name}") if field_prefix else (lambda name: name)
    if "phone" not in data:
        raise ApiError(400, "missing required field", f("phone"))
    phone = recipient(data["phone"], f("phone"))[0]
    names = {}
    for name in ("first_name", "last_name"):
        value = data.get(name)
        if value in (None, ""):
            names[name] = None
        elif not isinstance(value, str) or not _NAME.match(value):
            raise ApiError(400, "expected text of at most 64 characters", f(name))
        else:
            names[name] = value
    mail = data.get("email")
    mail = email(mail, f("email")) if mail not in (None, "") else None
    groups = data.get("groups") or []
    if isinstance(groups, str):  # a CSV cell: "vip;staff"
        groups = [g.strip() for g in re.split(r"[;,|]", groups) if g.strip()]
    if not isinstance(groups, list) or len(groups) > 50:
        raise ApiError(400, "expected a list of at most 50 group names", f("groups"))
    group_names = tuple(dict.fromkeys(group_name(g, f("groups")) for g in groups))
    custom = {}
    for name, value in data.items():
        if name in CONTACT_FIELDS:
            continue
        if not _FIELD_NAME.match(name):
            raise ApiError(400, "a custom field is named with letters, digits and '_'", f(name))
        if isinstance(value, bool) or not isinstance(value, str | int | float) \
                or len(str(value)) > 1000:
            raise ApiError(400, "expected text or a number of at most 1000 characters",
                           f(name))
        custom[name] = value
    if len(custom) > 50:
        raise ApiError(400, "at most 50 custom fields", field_prefix or None)
    return Contact(phone, names["first_name"], names["last_name"], mail,
                   json.dumps(custom, ensure_ascii=False) if custom else None, group_names)


def contacts(data: Any) -> list[Contact]:
    """A JSON body: one contact object, or a list of them (at most 10,000)."""
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > 10_000:
        raise ApiError(400, "expected 1 to 10,000 contacts (upload a CSV file for more)")
    return [contact(item, f"[{i}]" if isinstance(data, list) else "")
            for i, item in enumerate(items)]


# Discount codes ------------------------------------------------------------------------------

def pool_name(value: Any, field: str = "pool") -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        raise ApiError(400, "expected a pool name: 1-64 letters, digits, '.', '_', '-'", field)
    return value


def discount_codes(data: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    _unknown(data, {"pool", "codes"})
    if "pool" not in data:
        raise ApiError(400, "missing required field", "pool")
    pool = pool_name(data["pool"])
    codes = data.get("codes")
    if not isinstance(codes, list) or not codes or len(codes) > MAX_CODES:
        raise ApiError(400, f"expected a list of 1 to {MAX_CODES:,} codes", "codes")
    checked = []
    for i, code in enumerate(codes):
        if not isinstance(code, str) or not code.strip() or len(code) > 64 \
                or any(ch.isspace() for ch in code.strip()):
            raise ApiError(400, "expected a code of 1-64 characters without spaces",
                           f"codes[{i}]")
        checked.append(code.strip())
    return pool, tuple(checked)


# Polls -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PollBody:
    name: str
    number: str
    prefix: str | None
    prefix_key: str
    starts_at: float
    ends_at: float
    sender: str
    options: tuple[tuple[str, str, str | None], ...]
    replies: dict[str, str]
    limit_votes: int
    limit_seconds: int | None
    groups: tuple[str, ...]
    discount_pool: str | None


def _reply_template(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise ApiError(400, "expected text of 1 to 1000 characters", field)
    check_template(value)
    for name in re.findall(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}", value):
        if name not in pl.PLACEHOLDERS:
            raise ApiError(400, f"unknown placeholder {{{name}}} (a reply may use "
                           + ", ".join("{" + p + "}" for p in pl.PLACEHOLDERS) + ")", field)
    return value


def poll(data: dict[str, Any]) -> PollBody:
    _unknown(data, {"name", "number", "prefix", "starts_at", "ends_at", "from", "options",
                    "replies", "limit", "groups", "discount_pool"})
    for required in ("name", "number", "starts_at", "ends_at", "from", "options"):
        if required not in data:
            raise ApiError(400, "missing required field", required)
    name = data["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ApiError(400, "expected a name of 1 to 128 characters", "name")
    digits = number(data["number"])
    given, key = optional_prefix(data.get("prefix"))
    starts = _optional_time(data, "starts_at")
    ends = _optional_time(data, "ends_at")
    assert starts is not None and ends is not None
    if ends <= starts:
        raise ApiError(400, "the poll ends before it starts", "ends_at")
    options = data["options"]
    if not isinstance(options, list) or not 1 <= len(options) <= MAX_OPTIONS:
        raise ApiError(400, f"expected 1 to {MAX_OPTIONS} options", "options")
    checked: list[tuple[str, str, str | None]] = []
    keys: dict[str, int] = {}
    for i, option in enumerate(options):
        where = f"options[{i}]"
        if not isinstance(option, dict):
            raise ApiError(400, "expected {\"keyword\", \"reply\"?}", where)
        _unknown(option, {"keyword", "reply"})
        keyword = option.get("keyword")
        if not isinstance(keyword, str) or not keyword.strip() or len(keyword) > 32:
            raise ApiError(400, "expected a keyword of 1 to 32 characters",
                           f"{where}.keyword")
        folded = fold(" ".join(keyword.split()))
        if folded in keys:
            raise ApiError(400, f"the same keyword as options[{keys[folded]}] (keywords "
                           "match whatever their case and accents)", f"{where}.keyword")
        keys[folded] = i
        reply = option.get("reply")
        checked.append((keyword.strip(), folded,
                        _reply_template(reply, f"{where}.reply") if reply is not None else None))
    replies = data.get("replies") or {}
    if not isinstance(replies, dict):
        raise ApiError(400, "expected an object of replies", "replies")
    _unknown({f"replies.{k}": v for k, v in replies.items()},
             {f"replies.{k}" for k in pl.REPLY_KEYS})
    replies = {k: _reply_template(v, f"replies.{k}") for k, v in replies.items()
               if v is not None}
    limit = data.get("limit") or {}
    if not isinstance(limit, dict):
        raise ApiError(400, "expected {\"votes\": n, \"per_seconds\"?: n}", "limit")
    _unknown({f"limit.{k}": v for k, v in limit.items()}, {"limit.votes", "limit.per_seconds"})
    votes = limit.get("votes", 0)
    if isinstance(votes, bool) or not isinstance(votes, int) or not 0 <= votes <= 1_000_000:
        raise ApiError(400, "expected a whole number of votes, 0 for unlimited", "limit.votes")
    per = limit.get("per_seconds")
    if per is not None and (isinstance(per, bool) or not isinstance(per, int)
                            or not 1 <= per <= 366 * 86400):
        raise ApiError(400, "expected seconds, 1 to a year", "limit.per_seconds")
    groups = data.get("groups") or []
    if not isinstance(groups, list) or len(groups) > 50:
        raise ApiError(400, "expected a list of contact group names", "groups")
    pool = data.get("discount_pool")
    return PollBody(name.strip(), digits, given, key, starts, ends,
                    sender(data["from"]), tuple(checked), replies, votes, per,
                    tuple(group_name(g, "groups") for g in groups),
                    pool_name(pool, "discount_pool") if pool is not None else None)


# Queries -------------------------------------------------------------------------------------

def _single(args: dict[str, list[str]]) -> dict[str, str]:
    single = {}
    for name, values in args.items():
        if len(values) != 1:
            raise ApiError(400, "give this parameter once", name)
        single[name] = values[0]
    return single


def query(args: dict[str, list[str]], known: set[str]) -> dict[str, str]:
    single = _single(args)
    unknown = sorted(set(single) - known)
    if unknown:
        raise ApiError(400, "unknown query parameter (expected: " + ", ".join(sorted(known))
                       + ")", unknown[0])
    return single


def limit(args: dict[str, str], default: int = 100, maximum: int = 1000) -> int:
    text = args.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise ApiError(400, f"expected a whole number 1..{maximum}", "limit")
    return int(text)


def int_cursor(args: dict[str, str]) -> int | None:
    cursor = args.get("cursor")
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise ApiError(400, "not a cursor this API gave out", "cursor")
    return int(cursor)


INBOUND_QUERY = {"since", "until", "number", "sender", "cursor", "limit"}


def inbound_filter(args: dict[str, str]) -> InboundFilter:
    since = parse_time(args["since"], "since") if args.get("since") else None
    until = parse_time(args["until"], "until") if args.get("until") else None
    digits = number(args["number"], "number") if args.get("number") else None
    source = inbound_sender(args["sender"]) if "sender" in args else None
    return InboundFilter(since, until, digits, source)
