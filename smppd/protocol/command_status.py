"""What a command_status in a response means for the message and the session.

Temporary conditions (throttling, a full queue, a system error) are retried with the
same PDU content; permanent ones (a bad address, a rejected message) are never
retried, because the carrier will answer the same and may bill each attempt. A
connector can override any code from its configuration (`status_overrides`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from . import constants as c


class Action(StrEnum):
    OK = "ok"
    THROTTLED = "throttled"  # slow the bind down, retry the same message
    QUEUE_FULL = "queue_full"  # back off longer, retry the same message
    RETRY = "retry"  # temporary failure: retry with back-off
    FAIL = "fail"  # permanent: the message is rejected (and refunded)
    RECONNECT = "reconnect"  # the session is broken: retry the message after a new bind


DEFAULT_SUBMIT_ACTIONS: dict[int, Action] = {
    c.ESME_ROK: Action.OK,
    c.ESME_RTHROTTLED: Action.THROTTLED,
    c.ESME_RMSGQFUL: Action.QUEUE_FULL,
    c.ESME_RSYSERR: Action.RETRY,
    c.ESME_RX_T_APPN: Action.RETRY,
    c.ESME_RUNKNOWNERR: Action.RETRY,
    c.ESME_RINVBNDSTS: Action.RECONNECT,
    c.ESME_RINVSRCADR: Action.FAIL,
    c.ESME_RINVDSTADR: Action.FAIL,
    c.ESME_RX_P_APPN: Action.FAIL,
    c.ESME_RX_R_APPN: Action.FAIL,
    c.ESME_RINVMSGLEN: Action.FAIL,
    c.ESME_RINVCMDID: Action.FAIL,
}

# Bind failures after which retrying risks locking the account at the carrier.
AUTH_FAILURES = frozenset({c.ESME_RINVPASWD, c.ESME_RINVSYSID, c.ESME_RINVSYSTYP})


def classify_submit(status: int, overrides: Mapping[int, Action] | None = None) -> Action:
    """Action for a submit_sm_resp (or generic_nack) status. Codes not listed are
    permanent failures: an unknown vendor code is safer not retried blindly."""
    if overrides and status in overrides:
        return overrides[status]
    return DEFAULT_SUBMIT_ACTIONS.get(status, Action.FAIL)


def is_auth_failure(status: int) -> bool:
    return status in AUTH_FAILURES
