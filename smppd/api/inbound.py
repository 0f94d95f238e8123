"""HTTP routes of the inbound subsystem (DESIGN.md, Inbound): numbers and their
settings, the inbound list, contacts and groups, discount codes, polls with their
statistics and CSV exports.

The inbound reports are the reports subsystem's (`POST /v1/reports` types
`inbound`, `inbound-daily`, `poll`); its smppd.api.reports also serves the plain
CSV endpoints /v1/inbound/reports/detailed and /daily.
"""

from __future__ import annotations

import json
from typing import Any

from . import forms
from . import inbound_bodies as bodies
from .server import HttpRequest, HttpResponse
from .validation import ApiError, parse_json_object, recipient

PATHS = ("/v1/inbound", "/v1/contacts", "/v1/groups", "/v1/discount-codes", "/v1/polls")
CSV = b"text/csv; charset=utf-8"


def _methods(method: bytes, *allowed: bytes) -> None:
    if method not in allowed:
        raise ApiError(405, "use " + " or ".join(m.decode() for m in allowed))


def _created(body: Any) -> Any:
    return HttpResponse(201, json.dumps(body, ensure_ascii=False,
                                        separators=(",", ":")).encode())


def _csv(name: str) -> Any:
    def respond(data: bytes | None) -> Any:
        if data is None:
            return ApiError(404, "not found", "id")
        return HttpResponse(200, data, CSV, [(b"Content-Disposition",
                                              f'attachment; filename="{name}"'.encode())])
    return respond


def _found(what: str) -> Any:
    return lambda value: value if value is not None else ApiError(404, f"no such {what}", "id")


def route(service: Any, request: HttpRequest, account: Any, path: str) -> Any:
    method = request.method
    if path == "/v1/inbound":
        _methods(method, b"GET")
        args = bodies.query(request.query, bodies.INBOUND_QUERY)
        return service.list_inbound(account, bodies.inbound_filter(args),
                                    bodies.int_cursor(args), bodies.limit(args))
    if path == "/v1/inbound/numbers":
        _methods(method, b"GET", b"POST")
        if method == b"GET":
            return service.numbers(account)
        return service.reserve(account, bodies.reservation(
            parse_json_object(request.body))).addCallback(_created)
    if path.startswith("/v1/inbound/numbers/"):
        return _number(service, request, account, path[len("/v1/inbound/numbers/"):])
    if path.startswith(("/v1/contacts", "/v1/groups")):
        return _phonebook(service, request, account, path)
    if path == "/v1/discount-codes":
        _methods(method, b"POST")
        pool, codes = bodies.discount_codes(parse_json_object(request.body))
        return service.add_codes(account, pool, codes).addCallback(_created)
    if path == "/v1/polls":
        _methods(method, b"POST")
        return service.create_poll(account, bodies.poll(
            parse_json_object(request.body))).addCallback(_created)
    if path.startswith("/v1/polls/"):
        return _poll(service, request, account, path[len("/v1/polls/"):])
    raise ApiError(404, "no such path")


def _number(service: Any, request: HttpRequest, account: Any, rest: str) -> Any:
    number_text, _, action = rest.partition("/")
    number = bodies.number(number_text, "number")
    args = bodies.query(request.query, {"prefix"})
    prefix, key = bodies.optional_prefix(args.get("prefix"))
    if not action:
        _methods(request.method, b"DELETE")
        return service.release(account, number, key)
    if action != "settings":
        raise ApiError(404, "no such path (settings)")
    _methods(request.method, b"PUT")
    return service.save_settings(account, number, prefix, key,
                                 bodies.settings(parse_json_object(request.body)))


def _phonebook(service: Any, request: HttpRequest, account: Any, path: str) -> Any:
    method = request.method
    if path == "/v1/groups":
        _methods(method, b"GET")
        bodies.query(request.query, set())
        return service.groups(account)
    if path == "/v1/contacts":
        _methods(method, b"GET", b"POST")
        if method == b"GET":
            args = bodies.query(request.query, {"group", "cursor", "limit"})
            group = bodies.group_name(args["group"]) if "group" in args else None
            return service.contacts(account, group, bodies.int_cursor(args),
                                    bodies.limit(args))
        return _import(service, request, account).addCallback(_created)
    if not path.startswith("/v1/contacts/"):
        raise ApiError(404, "no such path")
    phone = recipient(path[len("/v1/contacts/"):], "phone")[0]
    _methods(method, b"GET", b"PUT", b"DELETE")
    if method == b"DELETE":
        return service.delete_contact(account, phone)
    if method == b"PUT":  # the whole contact, replaced (groups included)
        data = parse_json_object(request.body)
        if data.get("phone", "+" + phone).lstrip("+") != phone:
            raise ApiError(400, "the phone of a contact is its address: it cannot change",
                           "phone")
        contact = bodies.contact({**data, "phone": "+" + phone})
        return service.save_contacts(account, [contact]).addCallback(
            lambda _: service.contact(account, phone))
    return service.contact(account, phone).addCallback(_found("contact"))


def _import(service: Any, request: HttpRequest, account: Any) -> Any:
    """A JSON contact or list, a multipart form with a `file` CSV, or a text/csv
    body. CSV rows are read and checked on a pool thread, as job CSVs are."""
    content_type = request.headers.get(b"content-type", b"")  # the boundary keeps its case
    if forms.is_multipart(content_type):
        def rows() -> Any:
            parts = forms.parse_multipart(request.body, content_type)
            request.body = b""
            if "file" not in parts:
                raise ApiError(400, "missing the CSV file part", "file")
            return forms.csv_rows(parts["file"], required="phone")
        return service.import_contacts(account, rows)
    if content_type.lower().startswith(b"text/csv"):
        return service.import_contacts(account,
                                       lambda: forms.csv_rows(request.body, required="phone"))
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    return service.save_contacts(account, bodies.contacts(data))


def _poll(service: Any, request: HttpRequest, account: Any, rest: str) -> Any:
    poll_id, _, action = rest.partition("/")
    if not action and request.method == b"PUT":  # issue 15: the whole poll, replaced
        return service.update_poll(account, poll_id, bodies.poll(
            parse_json_object(request.body))).addCallback(_found("poll"))
    _methods(request.method, b"GET")
    if not action:
        bodies.query(request.query, set())
        return service.poll(account, poll_id).addCallback(_found("poll"))
    if action == "stats":
        args = bodies.query(request.query, {"cursor", "limit"})
        return service.poll_stats(account, poll_id, args.get("cursor"),
                                  bodies.limit(args)).addCallback(_found("poll"))
    if action in ("stats.csv", "votes.csv"):
        bodies.query(request.query, set())
        return service.poll_csv(account, poll_id, action.removesuffix(".csv")).addCallback(
            _csv(f"poll-{poll_id}-{action}"))
    raise ApiError(404, "no such path (stats, stats.csv or votes.csv)")
