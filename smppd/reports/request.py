"""Checking report, schedule and campaign requests: a JSON body in, a plain dict of
validated fields out, or an ApiError naming the field. Pure: no store, no network."""

from __future__ import annotations

import re
from typing import Any

from ..checks import ApiError, inbound_sender, pool_number
from ..ids import looks_like_id
from . import periods
from .catalog import TYPES

REPORT_FIELDS = {"type", "format", "period", "since", "until", "name", "job", "poll",
                 "campaign", "include_content", "include_params", "include_contacts",
                 "include_jobs", "number", "sender", "email", "async", "delimiter"}
SCHEDULE_FIELDS = (REPORT_FIELDS - {"period", "since", "until", "async"}) | {"every"}
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\t": "\t", "|": "|"}
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
MAX_EMAILS = 10


def _flag(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, "expected true or false", name)
    return value


def _text(data: dict[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ApiError(400, f"expected text of 1 to {limit} characters", name)
    return value.strip()


def _id(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not looks_like_id(value):
        raise ApiError(400, f"expected a {name} id as the API gave it", name)
    return value


def emails(value: Any, field: str = "email") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > MAX_EMAILS:
        raise ApiError(400, f"expected a list of 1 to {MAX_EMAILS} e-mail addresses", field)
    for address in value:
        if not isinstance(address, str) or len(address) > 254 or not _EMAIL.match(address):
            raise ApiError(400, f"not an e-mail address: {address!r}", field)
    return list(dict.fromkeys(value))


def report(data: dict[str, Any], schedule: bool = False) -> dict[str, Any]:
    """The validated request. The period stays as given (a name or since/until); the
    service resolves it in the account's zone."""
    allowed = SCHEDULE_FIELDS if schedule else REPORT_FIELDS
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, "unknown field (expected: " + ", ".join(sorted(allowed)) + ")",
                       unknown[0])
    kind = data.get("type")
    if kind not in TYPES:
        raise ApiError(400, "expected one of " + ", ".join(TYPES), "type")
    report_type = TYPES[kind]
    fmt = data.get("format", "csv")
    if fmt not in report_type.formats:
        raise ApiError(400, f"the {kind} report comes as " + ", ".join(report_type.formats),
                       "format")
    found: dict[str, Any] = {"type": kind, "format": fmt}
    found["job"] = _id(data, "job")
    found["campaign"] = _id(data, "campaign")
    if found["job"] and found["campaign"]:
        raise ApiError(400, "give a job or a campaign, not both", "campaign")
    if report_type.needs_job and not (found["job"] or found["campaign"]):
        raise ApiError(400, f"the {kind} report needs a job (or a campaign)", "job")
    if not report_type.takes_job:
        for name in ("job", "campaign"):
            if found[name]:
                raise ApiError(400, f"the {kind} report is not per {name}", name)
    _scope(data, found, kind)
    if not schedule:
        by_job = (found["job"] or found["campaign"]) and report_type.job_is_period
        _period(data, found, required=report_type.needs_period and not by_job)
    found["name"] = _text(data, "name", 128)
    found["include_content"] = _flag(data, "include_content", False)
    found["include_params"] = _flag(data, "include_params", False)
    found["include_jobs"] = _flag(data, "include_jobs", True)
    found["include_contacts"] = _flag(data, "include_contacts", False)
    if found["include_contacts"] and not report_type.contacts:
        raise ApiError(400, "phonebook fields come with the " + " and ".join(
            name for name, t in TYPES.items() if t.contacts) + " reports", "include_contacts")
    found["async"] = _flag(data, "async", False)
    delimiter = data.get("delimiter", ",")
    if delimiter not in DELIMITERS:
        raise ApiError(400, "expected one of , ; | tab", "delimiter")
    if fmt != "csv" and "delimiter" in data:
        raise ApiError(400, "a delimiter is for the csv format", "delimiter")
    found["delimiter"] = DELIMITERS[delimiter]
    found["email"] = emails(data.get("email"))
    return found


def _scope(data: dict[str, Any], found: dict[str, Any], kind: str) -> None:
    """What the inbound and poll reports are about: a poll (the poll report's), a
    receiving number and a sender (inbound reports')."""
    report_type = TYPES[kind]
    found["poll"] = _id(data, "poll")
    if report_type.needs_poll and not found["poll"]:
        raise ApiError(400, f"the {kind} report needs a poll (its id)", "poll")
    if found["poll"] and not report_type.needs_poll:
        raise ApiError(400, "a poll is for the poll report", "poll")
    for name, check in (("number", pool_number), ("sender", inbound_sender)):
        if data.get(name) is None:
            found[name] = None
        elif not report_type.inbound:
            raise ApiError(400, f"a {name} filter is for the inbound reports", name)
        else:
            found[name] = check(data[name], name)


def _period(data: dict[str, Any], found: dict[str, Any], required: bool) -> None:
    period, since, until = data.get("period"), data.get("since"), data.get("until")
    if period is not None and (since is not None or until is not None):
        raise ApiError(400, "give a period or since/until, not both", "period")
    if period is not None:
        if period not in periods.NAMES:
            raise ApiError(400, "expected one of " + ", ".join(periods.NAMES), "period")
        found["period"] = period
        return
    if since is None and until is None:
        if required:
            raise ApiError(400, "give a period (" + ", ".join(periods.NAMES) +
                           ") or since and until", "period")
        return
    for name, value in (("since", since), ("until", until)):
        if not isinstance(value, str):
            raise ApiError(400, "expected an ISO 8601 date or time", name)
        try:
            periods.parse_moment(value, periods.zone("UTC"))
        except periods.PeriodError as exc:
            raise ApiError(400, str(exc), name) from None
    found["since"], found["until"] = since, until


def schedule(data: dict[str, Any]) -> dict[str, Any]:
    every = data.get("every")
    if every not in periods.EVERY:
        raise ApiError(400, "expected one of " + ", ".join(periods.EVERY), "every")
    found = report({k: v for k, v in data.items() if k != "every"} | {"every": every},
                   schedule=True)
    found.pop("async", None)
    found["every"] = every
    return found


def campaign(data: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    allowed = {"name", "description", "jobs"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, "unknown field (expected: name, description, jobs)", unknown[0])
    found: dict[str, Any] = {}
    if not partial or "name" in data:
        name = _text(data, "name", 128)
        if name is None:
            raise ApiError(400, "missing required field", "name")
        found["name"] = name
    if "description" in data:
        found["description"] = _text(data, "description", 1024) if data["description"] \
            else None
    found["jobs"] = job_list(data.get("jobs", []))
    return found


def job_list(value: Any, field: str = "jobs") -> list[str]:
    if not isinstance(value, list) or len(value) > 1000:
        raise ApiError(400, "expected a list of up to 1000 job ids", field)
    for item in value:
        if not isinstance(item, str) or not looks_like_id(item):
            raise ApiError(400, f"not a job id: {item!r}", field)
    return list(dict.fromkeys(value))
