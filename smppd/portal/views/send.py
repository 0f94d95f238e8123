"""Send one message: the form, the preview (parts, encoding, characters and cost, from
the same code the API prices with: the intake's Admission and validation.text_info),
and the send itself through the daemon's accept_message, recorded as channel
`portal` with the user's login. Without JavaScript the preview comes on submit; with
it, as the user types, from /portal/send/preview."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ...api import validation
from ...api.validation import ApiError
from ...protocol.segmentation import ConcatReferences
from ..web import Page, Route, json_response


def preview(portal: Any, page: Page, to: str, sender: str, text: str) -> dict[str, Any]:
    """{"parts", "encoding", "characters", "points"} (points None until the number is
    given), or {"error", "field"}."""
    admission = portal.backend.admission()
    result: dict[str, Any] = {"characters": len(text), "parts": 0, "encoding": None,
                              "points": None}
    if not text:
        return result
    try:
        if to:
            digits, country = validation.recipient(to)
            prepared = admission.prepare(page.account.id, sender or "preview", digits,
                                         country, text, ConcatReferences(bits=16),
                                         portal.backend.clock())
            info, result["points"] = prepared.info, prepared.op.points
        else:
            default = admission.router.default_text
            info = validation.text_info(text, default.profile, default.policy)
    except ApiError as exc:
        return {**result, "error": exc.message, "field": exc.field}
    result.update(parts=info.parts, encoding=info.encoding.value)
    return result


def preview_json(portal: Any, page: Page) -> Any:
    return json_response(preview(portal, page, page.query("to")[:64],
                                 page.query("from")[:16],
                                 page.query("text")[:validation.MAX_TEXT_LENGTH + 1]))


def form(portal: Any, page: Page) -> Any:
    return page.render("send.html", values={"to": page.query("to"), "from": page.query("from"),
                                            "text": page.query("text"), "ref_id": ""},
                       info=None, error=None, sent=page.query("sent"))


@defer.inlineCallbacks
def send(portal: Any, page: Page) -> Any:
    values = {name: page.form.get(name, "") for name in ("to", "from", "text", "ref_id")}
    values["to"], values["from"] = values["to"].strip(), values["from"].strip()
    info = preview(portal, page, values["to"], values["from"], values["text"])
    body = {"to": values["to"], "from": values["from"], "text": values["text"]}
    if values["ref_id"].strip():
        body["ref_id"] = values["ref_id"].strip()
    try:
        message = validation.message(body)
    except ApiError as exc:
        return page.render("send.html", status=400, values=values, info=info,
                           error=exc, sent=None)
    if page.field("action") == "preview":
        return page.render("send.html", values=values, info=info, error=None, sent=None)
    try:
        result = yield portal.backend.app.accept_message(page.account, message, channel="portal",
                                                         sent_by=page.who)
    except ApiError as exc:
        return page.render("send.html", status=exc.status, values=values, info=info,
                           error=exc, sent=None)
    # The sender is kept for the next message; the rest is cleared.
    return page.redirect("/portal/send", sent=result["id"], **{"from": values["from"]})


ROUTES = [
    Route(b"GET", r"/portal/send", form, "send"),
    Route(b"POST", r"/portal/send", send, "send"),
    Route(b"GET", r"/portal/send/preview", preview_json, "send", json=True),
]
