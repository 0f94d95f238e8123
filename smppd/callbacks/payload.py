"""The JSON body of each event, built from the outbox row (and, for a message event,
its message) when it is read for delivery.

Built only from what never changes (the message's own fields and the event's status,
error and time), so every attempt of one event sends the same body; only the
`webhook-timestamp` header and the signature are new per attempt.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..status import Status

STATUS_DESCRIPTIONS = {
    Status.QUEUED: "accepted and waiting to be sent",
    Status.SCHEDULED: "waiting for its start time",
    Status.SUBMITTED: "accepted by the operator's SMSC",
    Status.DELIVERED: "delivered to the handset",
    Status.UNDELIVERED: "the operator could not deliver it",
    Status.EXPIRED: "not delivered before its validity ran out",
    Status.REJECTED: "refused by the operator (refunded for the parts never accepted)",
    Status.DELETED: "deleted by the operator before delivery",
    Status.UNKNOWN: "sent, but the operator's answer never came; a late receipt may "
                    "still settle it",
    Status.FAILED: "could not be sent (refunded for the parts never accepted)",
    Status.CANCELLED: "cancelled before it was sent (refunded)",
}
ERROR_DESCRIPTIONS = {
    "ESME_RINVDSTADR": "invalid destination address",
    "ESME_RINVSRCADR": "invalid source address (sender id)",
    "ESME_RTHROTTLED": "the operator throttled the sending",
    "ESME_RMSGQFUL": "the operator's message queue was full",
    "ESME_RSYSERR": "system error at the operator",
    "ESME_RX_P_APPN": "rejected by the operator's application",
    "ESME_RX_R_APPN": "rejected by the operator's application",
    "ESME_RX_T_APPN": "temporary error at the operator's application",
    "ESME_RINVMSGLEN": "the message length was refused",
    "job stopped": "its bulk job was stopped before it was sent",
}


def describe_error(code: str | None) -> str | None:
    if code is None:
        return None
    if code in ERROR_DESCRIPTIONS:
        return ERROR_DESCRIPTIONS[code]
    if code.startswith("unsendable"):
        return "the text cannot be carried by this operator's settings"
    if code.isdigit():
        return f"operator error code {code} in the delivery receipt"
    return code


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def message_data(message_id: str, ref_id: str | None, params: str | None,
                 partner: str | None, status: str, error_code: str | None, at: datetime,
                 parts: int | None, sender: str | None, recipient: str | None,
                 job_id: str | None, created: datetime | None) -> dict[str, Any]:
    """`data` of message.status / message.final from an outbox row joined with its
    message (see queries.due_events); `params` as stored (JSON text)."""
    return {
        "id": message_id, "ref_id": ref_id,
        "params": json.loads(params) if params else None,
        "partner": partner, "status": status,
        "description": STATUS_DESCRIPTIONS.get(status, status),
        "error": error_code, "error_description": describe_error(error_code),
        "parts": parts, "at": iso(at), "to": "+" + recipient if recipient else None,
        "from": sender, "job": job_id, "created_at": iso(created)}


# One encoder for every body: json.dumps with options other than its defaults makes
# a new JSONEncoder per call, a fifth of a body's cost.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def body(event_type: str, at: datetime, data: dict[str, Any]) -> str:
    return _ENCODER.encode({"type": event_type, "timestamp": iso(at), "data": data})
