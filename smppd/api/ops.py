"""Operators' HTTP: /metrics, /healthz and /readyz (on the API port, or on their own
`http.ops_listen` port so the public one stays customers-only), and the route
templates every HTTP request is counted by.

Requests are counted by a route template from a fixed vocabulary (the API's
resources and actions, `{id}` for the rest), never by the raw path: a scan of
random paths must not mint a new time series per path.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet import defer

from .server import HttpFactory, HttpLimits, HttpRequest, HttpResponse

OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
# DESIGN.md's resources and actions; anything else is counted as "other".
_RESOURCES = frozenset({
    "messages", "jobs", "account", "statuses", "reports", "report-schedules", "campaigns",
    "inbound", "contacts", "groups", "discount-codes", "polls", "callbacks"})
_WORDS = frozenset({"pause", "resume", "stop", "file", "numbers", "jobs", "deliveries",
                    "stats", "settings"})
_MAX_SEGMENTS = 5


def ops_response(app: Any, path: str) -> HttpResponse:
    """The answer to one of OPS_PATHS (unauthenticated: nothing here is a secret)."""
    if path == "/metrics":
        return HttpResponse(200, generate_latest(app.metrics.registry),
                            CONTENT_TYPE_LATEST.encode())
    if path == "/readyz":
        ready, detail = app.readiness()
        return _json(200 if ready else 503, detail)
    return _json(200, {"status": "ok"})


@functools.lru_cache(maxsize=1024)  # every request is counted: most paths recur
def route_template(path: str) -> str:
    """'/v1/messages/0194...' -> '/v1/messages/{id}'; unknown paths -> 'other'."""
    path = path.rstrip("/") or "/"
    if path in OPS_PATHS:
        return path
    for prefix in ("/portal", "/ops"):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix + "/*"
    parts = path.split("/")[1:]
    if len(parts) < 2 or parts[0] != "v1" or parts[1] not in _RESOURCES \
            or len(parts) > _MAX_SEGMENTS:
        return "other"
    return "/" + "/".join(parts[:2] + [p if p in _WORDS else "{id}" for p in parts[2:]])


def counted(metrics: Any, request: HttpRequest,
            result: HttpResponse | defer.Deferred[HttpResponse],
            ) -> HttpResponse | defer.Deferred[HttpResponse]:
    """Count the request once its response is known."""
    route = route_template(request.path)

    def count(response: HttpResponse) -> HttpResponse:
        metrics.http_request(route, response.status)
        return response

    if isinstance(result, defer.Deferred):
        return result.addCallback(count)
    return count(result)


class OpsApi:
    """The separate ops listener: the three operators' paths and nothing else."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def handle(self, request: HttpRequest) -> HttpResponse | defer.Deferred[HttpResponse]:
        path = request.path.rstrip("/") or "/"
        if path not in OPS_PATHS:
            answer = _json(404, {"error": "no such path (the ops listener serves /metrics, "
                                          "/healthz and /readyz)"})
        elif request.method not in (b"GET", b"HEAD"):
            answer = _json(405, {"error": "use GET"})
        else:
            answer = ops_response(self.app, path)
        return counted(self.app.metrics, request, answer)


def make_ops_factory(app: Any) -> HttpFactory:
    return HttpFactory(OpsApi(app).handle, HttpLimits(max_body=1024, max_job_body=1024),
                       app.reactor)


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(body, separators=(",", ":")).encode())
