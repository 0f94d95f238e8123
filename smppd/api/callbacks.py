"""The callbacks part of the HTTP API (issue 12), routed here from http.py:

    POST   /v1/callbacks                      register an endpoint (201, its key once)
    GET    /v1/callbacks                      the account's endpoints
    DELETE /v1/callbacks/{id}                 remove one (its pending events cancelled)
    GET    /v1/callbacks/{id}/deliveries      its events: ?state=pending|delivered|failed
    POST   /v1/callbacks/secret               a new key for events sent to forward URLs
"""

from __future__ import annotations

import json
from typing import Any

from ..callbacks.endpoints import parse_create
from ..store import outbox
from .server import HttpRequest, HttpResponse
from .validation import ApiError, parse_json_object

STATES = (outbox.PENDING, outbox.DELIVERED, outbox.FAILED, outbox.CANCELLED)


def _created(body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(201, json.dumps(body, ensure_ascii=False,
                                        separators=(",", ":")).encode())


def _found(what: str) -> Any:
    return lambda value: value if value is not None else ApiError(404, f"no such {what}", "id")


def route(service: Any, request: HttpRequest, account_id: int, path: str) -> Any:
    method = request.method
    if service is None:
        raise ApiError(503, "callbacks are not running on this server")
    if path == "/v1/callbacks":
        if method == b"POST":
            spec = parse_create(parse_json_object(request.body))
            return service.create(account_id, spec).addCallback(_created)
        if method == b"GET":
            return service.list(account_id)
        raise ApiError(405, "use GET or POST")
    rest = path[len("/v1/callbacks/"):]
    if rest == "secret":
        if method != b"POST":
            raise ApiError(405, "use POST")
        return service.rotate_secret(account_id).addCallback(_created)
    endpoint_id, _, action = rest.partition("/")
    if not action:
        if method != b"DELETE":
            raise ApiError(405, "use DELETE")
        return service.delete(account_id, endpoint_id).addCallback(_found("callback"))
    if action != "deliveries":
        raise ApiError(404, "no such path (deliveries)")
    if method != b"GET":
        raise ApiError(405, "use GET")
    state, cursor, limit = _deliveries_query(request.query)
    return service.deliveries(account_id, endpoint_id, state, cursor, limit).addCallback(
        _found("callback"))


def _deliveries_query(query: dict[str, list[str]]) -> tuple[str | None, int | None, int]:
    args = {}
    for name, values in query.items():
        if name not in ("state", "cursor", "limit"):
            raise ApiError(400, "unknown query parameter (expected: cursor, limit, state)",
                           name)
        if len(values) != 1:
            raise ApiError(400, "give this parameter once", name)
        args[name] = values[0]
    state = args.get("state")
    if state is not None and state not in STATES:
        raise ApiError(400, "expected one of " + ", ".join(STATES), "state")
    cursor = args.get("cursor")
    if cursor is not None and not cursor.isdigit():
        raise ApiError(400, "not a cursor this API gave out", "cursor")
    limit = args.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise ApiError(400, "expected a whole number 1..1000", "limit")
    return state, int(cursor) if cursor is not None else None, int(limit)
