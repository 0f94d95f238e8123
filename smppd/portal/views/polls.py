"""Polls: the list, the create and edit form (options, replies, limits, allowed
groups, a discount-code pool), loading codes, and each poll's statistics with a
server-drawn SVG bar chart and CSV downloads, all through the InboundService and
the API's own poll body check."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from twisted.internet import defer

from ...api import inbound_bodies as bodies
from ...api.validation import ApiError
from ...inbound.polls import REPLY_KEYS
from ...store import portal_queries as pq
from .. import chart, explain
from ..localtime import from_input, to_input
from ..web import Page, PageError, Route, download

_ID = r"(?P<poll_id>[0-9a-f]{32})"
FIELDS = ("name", "number", "prefix", "starts_at", "ends_at", "from", "options",
          "limit_votes", "limit_seconds", "groups", "discount_pool",
          *(f"reply_{key}" for key in REPLY_KEYS))


def _time(value: str, field: str, zone: tzinfo) -> str:
    """<input type=datetime-local> (the account's local time) -> ISO UTC for the API."""
    if not value:
        raise ApiError(400, "missing required field", field)
    return from_input(value, zone, field)


def _whole(value: str, field: str) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise ApiError(400, "expected a whole number", field)
    return int(value)


def body(values: dict[str, str], zone: tzinfo) -> bodies.PollBody:
    """The form as the API's JSON body, checked by the API's own function. Options:
    one a line, `KEYWORD` or `KEYWORD | reply`."""
    options = []
    for line in values["options"].splitlines():
        keyword, _, reply = line.partition("|")
        if keyword.strip():
            option: dict[str, Any] = {"keyword": keyword.strip()}
            if reply.strip():
                option["reply"] = reply.strip()
            options.append(option)
    data: dict[str, Any] = {
        "name": values["name"], "number": values["number"],
        "starts_at": _time(values["starts_at"], "starts_at", zone),
        "ends_at": _time(values["ends_at"], "ends_at", zone), "from": values["from"],
        "options": options,
        "replies": {key: values[f"reply_{key}"] for key in REPLY_KEYS
                    if values[f"reply_{key}"]},
        "limit": {"votes": _whole(values["limit_votes"], "limit.votes") or 0},
        "groups": [g.strip() for g in values["groups"].split(",") if g.strip()]}
    per = _whole(values["limit_seconds"], "limit.per_seconds")
    if per is not None:
        data["limit"]["per_seconds"] = per
    if values["prefix"]:
        data["prefix"] = values["prefix"]
    if values["discount_pool"]:
        data["discount_pool"] = values["discount_pool"]
    return bodies.poll(data)


def values_of(poll: dict[str, Any], zone: tzinfo) -> dict[str, str]:
    values = {name: "" for name in FIELDS}
    values.update(
        name=poll["name"], number=poll["number"], prefix=poll["prefix"] or "",
        starts_at=to_input(poll["starts_at"], zone), ends_at=to_input(poll["ends_at"], zone),
        **{"from": poll["from"]},
        options="\n".join(o["keyword"] + (f" | {o['reply']}" if o["reply"] else "")
                          for o in poll["options"]),
        limit_votes=str(poll["limit"]["votes"] or ""),
        limit_seconds=str(poll["limit"]["per_seconds"] or ""),
        groups=", ".join(poll["groups"]), discount_pool=poll["discount_pool"] or "")
    for key, text in poll["replies"].items():
        values[f"reply_{key}"] = text
    return values


@defer.inlineCallbacks
def poll_list(portal: Any, page: Page) -> Any:
    polls = yield portal.backend.read(pq.polls, page.account.id)
    return page.render("polls.html", polls=polls, done=page.query("done"), error=None)


@defer.inlineCallbacks
def _form(portal: Any, page: Page, values: dict[str, str], poll_id: str | None,
          error: ApiError | None = None, status: int = 200) -> Any:
    numbers = yield portal.backend.app.inbound.numbers(page.account)
    groups = yield portal.backend.app.inbound.groups(page.account)
    return page.render("poll_form.html", status=status, values=values, poll_id=poll_id,
                       error=error, numbers=numbers["numbers"], groups=groups["groups"],
                       reply_keys=REPLY_KEYS, reply_labels=explain.REPLIES)


def new_form(portal: Any, page: Page) -> Any:
    values = {name: "" for name in FIELDS}
    values["options"] = "YES\nNO"
    return _form(portal, page, values, None)


@defer.inlineCallbacks
def _found(portal: Any, page: Page, poll_id: str) -> Any:
    poll = yield portal.backend.app.inbound.poll(page.account, poll_id)
    if poll is None:
        raise PageError(404, page.gettext("There is no such poll in this account."))
    return poll


@defer.inlineCallbacks
def edit_form(portal: Any, page: Page, poll_id: str) -> Any:
    poll = yield _found(portal, page, poll_id)
    return (yield _form(portal, page, values_of(poll, page.zone), poll_id))


@defer.inlineCallbacks
def save(portal: Any, page: Page, poll_id: str | None = None) -> Any:
    values = {name: page.form.get(name, "").strip() for name in FIELDS}
    service = portal.backend.app.inbound
    try:
        checked = body(values, page.zone)
        if poll_id is None:
            result = yield service.create_poll(page.account, checked)
        else:
            result = yield service.update_poll(page.account, poll_id, checked)
            if result is None:
                raise PageError(404, page.gettext("There is no such poll in this account."))
    except ApiError as exc:
        return (yield _form(portal, page, values, poll_id, exc, exc.status))
    return page.redirect(f"/portal/polls/{result['id']}", done="saved")


@defer.inlineCallbacks
def stats(portal: Any, page: Page, poll_id: str) -> Any:
    poll = yield _found(portal, page, poll_id)
    cursor = page.query("cursor") or None
    found = yield portal.backend.app.inbound.poll_stats(page.account, poll_id, cursor, 50)
    svg = chart.bars(page.gettext("Votes for %(name)s", name=poll["name"]),
                     [(o["keyword"], o["votes"], o["percent"]) for o in found["options"]],
                     page.gettext("votes"))
    return page.render("poll.html", poll=poll, stats=found, chart=svg,
                       done=page.query("done"), outcomes=explain.OUTCOMES)


@defer.inlineCallbacks
def csv(portal: Any, page: Page, poll_id: str, what: str) -> Any:
    data = yield portal.backend.app.inbound.poll_csv(page.account, poll_id, what)
    if data is None:
        raise PageError(404, page.gettext("There is no such poll in this account."))
    return download(data, f"poll-{poll_id}-{what}.csv")


@defer.inlineCallbacks
def add_codes(portal: Any, page: Page) -> Any:
    text = page.form.get("codes", "")
    if page.files.get("file"):
        text += "\n" + page.files["file"].decode("utf-8", "replace")
    codes = [code.strip() for code in text.replace(",", "\n").splitlines() if code.strip()]
    try:
        pool, checked = bodies.discount_codes({"pool": page.field("pool"), "codes": codes})
        result = yield portal.backend.app.inbound.add_codes(page.account, pool, checked)
    except ApiError as exc:
        polls = yield portal.backend.read(pq.polls, page.account.id)
        return page.render("polls.html", status=exc.status, polls=polls, done=None,
                           error=exc)
    return page.redirect("/portal/polls", done="codes", added=result["added"],
                         skipped=result["skipped"])


ROUTES = [
    Route(b"GET", r"/portal/polls", poll_list, "view"),
    Route(b"GET", r"/portal/polls/new", new_form, "send"),
    Route(b"POST", r"/portal/polls", save, "send"),
    Route(b"POST", r"/portal/polls/codes", add_codes, "send"),
    Route(b"GET", rf"/portal/polls/{_ID}", stats, "view"),
    Route(b"GET", rf"/portal/polls/{_ID}/edit", edit_form, "send"),
    Route(b"POST", rf"/portal/polls/{_ID}", save, "send"),
    Route(b"GET", rf"/portal/polls/{_ID}/(?P<what>stats|votes)\.csv", csv, "view"),
]
