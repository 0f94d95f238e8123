"""Callback endpoints: what `POST /v1/callbacks` accepts, and the reactor's view of
every account's endpoints (to check a message's `callback` without a read).

The view is loaded at start, changed by this daemon's own creates and deletes once
they commit, and re-read every so often for changes another instance made on a
shared database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..checks import ApiError
from . import signing

EVENTS = ("status", "final", "inbound")
FIELDS = {"url", "events", "secret", "default"}
MAX_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    url: str
    on_status: bool
    on_final: bool
    on_inbound: bool
    secret: str | None
    default: bool | None


def check_url(value: Any, field: str = "url") -> str:
    """An absolute http or https URL with a host; nothing else can be POSTed to."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, "expected an http or https URL", field)
    if len(value) > MAX_URL_LENGTH:
        raise ApiError(400, f"at most {MAX_URL_LENGTH} characters, got {len(value)}", field)
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ApiError(400, "a URL cannot contain spaces or control characters", field)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ApiError(400, f"not a URL: {exc}", field) from None
    if parts.scheme not in ("http", "https"):
        raise ApiError(400, f"expected http or https, got {parts.scheme or 'no scheme'!r}",
                       field)
    if not parts.hostname:
        raise ApiError(400, "the URL has no host", field)
    if port == 0:
        raise ApiError(400, "the URL's port must be 1..65535", field)
    if parts.fragment:
        raise ApiError(400, "a URL to POST to has no #fragment", field)
    return value


def parse_create(data: dict[str, Any]) -> EndpointSpec:
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ApiError(400, "unknown field (expected: " + ", ".join(sorted(FIELDS)) + ")",
                       unknown[0])
    if "url" not in data:
        raise ApiError(400, "missing required field", "url")
    url = check_url(data["url"])
    events = data.get("events", ["final"])
    if not isinstance(events, list) or not events or not all(
            isinstance(e, str) and e in EVENTS for e in events):
        raise ApiError(400, "expected a non-empty list of: " + ", ".join(EVENTS), "events")
    secret = data.get("secret")
    if secret is not None:
        problem = signing.check_secret(secret) if isinstance(secret, str) \
            else "expected a string"
        if problem:
            raise ApiError(400, problem, "secret")
    default = data.get("default")
    if default is not None and not isinstance(default, bool):
        raise ApiError(400, "expected true or false", "default")
    return EndpointSpec(url, "status" in events, "final" in events, "inbound" in events,
                        secret, default)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    account_id: int
    url: str
    is_default: bool


class Registry:
    """account id -> endpoint id -> Endpoint, on the reactor thread."""

    def __init__(self) -> None:
        self.by_account: dict[int, dict[str, Endpoint]] = {}

    def replace(self, endpoints: list[Endpoint]) -> None:
        by_account: dict[int, dict[str, Endpoint]] = {}
        for endpoint in endpoints:
            by_account.setdefault(endpoint.account_id, {})[endpoint.id] = endpoint
        self.by_account = by_account

    def add(self, endpoint: Endpoint) -> None:
        own = self.by_account.setdefault(endpoint.account_id, {})
        if endpoint.is_default:
            for other_id, other in list(own.items()):
                own[other_id] = Endpoint(other.id, other.account_id, other.url, False)
        own[endpoint.id] = endpoint

    def remove(self, account_id: int, endpoint_id: str) -> None:
        self.by_account.get(account_id, {}).pop(endpoint_id, None)

    def has_endpoints(self) -> bool:
        return any(self.by_account.values())

    def owns(self, account_id: int, endpoint_id: str) -> bool:
        return endpoint_id in self.by_account.get(account_id, {})

    def check(self, account_id: int, endpoint_id: str | None) -> None:
        """ApiError naming `callback` for an id that is not one of the account's."""
        if endpoint_id is not None and not self.owns(account_id, endpoint_id):
            raise ApiError(400, "no such callback endpoint for this account "
                           "(see GET /v1/callbacks)", "callback")
