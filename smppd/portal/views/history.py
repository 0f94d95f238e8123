"""The history: the API's list (same filters, same validation, keyset pages newest
first) with each row's details (parts with SMSC ids, events, the error explained)
read for the whole page at once, and the "Information" section on every status."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from twisted.internet import defer

from ...api import validation
from ...api.validation import ApiError
from ...status import ALL
from ...store import portal_queries as pq
from ...store import queries
from .. import explain
from ..localtime import dates_to_times
from ..web import Page, Route

PAGE_SIZE = 50
FILTERS = ("sender", "recipient", "status", "channel", "since", "until", "job", "ref_id")


def api_args(values: dict[str, str], zone: tzinfo) -> dict[str, str]:
    """The form's values as the API's query: dates (whole days of the account's zone)
    as times."""
    return dates_to_times({name: value for name, value in values.items() if value}, zone)


@defer.inlineCallbacks
def history(portal: Any, page: Page) -> Any:
    values = {name: page.query(name)[:128] for name in FILTERS}
    cursor = page.query("cursor") or None
    error = None
    messages: list[dict[str, Any]] = []
    next_cursor = None
    try:
        args = api_args(values, page.zone)
        if cursor:
            args["cursor"] = cursor
        where, cursor, limit = validation.list_query({**args, "limit": str(PAGE_SIZE)})
    except ApiError as exc:
        error = exc
    else:
        messages, next_cursor = yield portal.backend.app.list_messages(
            page.account, where, cursor, limit)
        details = yield portal.backend.read(
            queries.message_details, {m["id"]: m["created_at"] for m in messages})
        for message in messages:
            message.update(details[message["id"]])
            message["explained"] = explain.error(message["error_code"])
        texts = yield portal.backend.read(pq.texts, page.account.id, [m["id"] for m in messages])
        for message in messages:
            message["text"] = texts.get(message["id"], "")
    return page.render("history.html", values=values, messages=messages,
                       next_cursor=next_cursor, cursor=cursor, error=error, statuses=ALL,
                       channels=validation.CHANNELS, explain_status=explain.status,
                       more_query={k: v for k, v in values.items() if v})


ROUTES = [Route(b"GET", r"/portal/history", history, "view")]
