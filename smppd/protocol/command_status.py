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


# What a command_status means, in plain words (GET /v1/statuses, reports). SMPP 3.4
# section 5.1.3 names the codes; smpplib's tables give the numbers (constants.py).
MEANINGS: dict[str, str] = {
    "ESME_ROK": "no error",
    "ESME_RINVMSGLEN": "the message length is invalid",
    "ESME_RINVCMDLEN": "the command length is invalid",
    "ESME_RINVCMDID": "the SMSC does not know this command",
    "ESME_RINVBNDSTS": "the command is not allowed in the bind's state",
    "ESME_RALYBND": "already bound",
    "ESME_RINVPRTFLG": "invalid priority flag",
    "ESME_RINVREGDLVFLG": "invalid registered-delivery flag",
    "ESME_RSYSERR": "a system error at the SMSC (temporary)",
    "ESME_RINVSRCADR": "the sender address (from) is invalid or not allowed",
    "ESME_RINVDSTADR": "the destination number is invalid",
    "ESME_RINVMSGID": "the message id is invalid",
    "ESME_RBINDFAIL": "the bind failed",
    "ESME_RINVPASWD": "wrong password",
    "ESME_RINVSYSID": "unknown system id",
    "ESME_RCANCELFAIL": "cancelling the message failed",
    "ESME_RREPLACEFAIL": "replacing the message failed",
    "ESME_RMSGQFUL": "the SMSC's queue is full (temporary)",
    "ESME_RINVSERTYP": "invalid service type",
    "ESME_RINVNUMDESTS": "invalid number of destinations",
    "ESME_RINVDLNAME": "invalid distribution list name",
    "ESME_RINVDESTFLAG": "invalid destination flag",
    "ESME_RINVSUBREP": "invalid submit-with-replace request",
    "ESME_RINVESMCLASS": "invalid esm_class",
    "ESME_RCNTSUBDL": "cannot submit to a distribution list",
    "ESME_RSUBMITFAIL": "the submit failed",
    "ESME_RINVSRCTON": "invalid sender type of number",
    "ESME_RINVSRCNPI": "invalid sender numbering plan",
    "ESME_RINVDSTTON": "invalid destination type of number",
    "ESME_RINVDSTNPI": "invalid destination numbering plan",
    "ESME_RINVSYSTYP": "invalid system type",
    "ESME_RINVREPFLAG": "invalid replace-if-present flag",
    "ESME_RINVNUMMSGS": "invalid number of messages",
    "ESME_RTHROTTLED": "sent too fast: the SMSC throttled us (temporary)",
    "ESME_RINVSCHED": "invalid scheduled delivery time",
    "ESME_RINVEXPIRY": "invalid validity period",
    "ESME_RINVDFTMSGID": "invalid predefined message",
    "ESME_RX_T_APPN": "the receiving application is temporarily unavailable",
    "ESME_RX_P_APPN": "the receiving application refused it permanently",
    "ESME_RX_R_APPN": "the receiving application rejected it",
    "ESME_RQUERYFAIL": "query failed",
    "ESME_RINVOPTPARSTREAM": "error in the optional part of the PDU",
    "ESME_ROPTPARNOTALLWD": "an optional parameter is not allowed",
    "ESME_RINVPARLEN": "invalid parameter length",
    "ESME_RMISSINGOPTPARAM": "a required optional parameter is missing",
    "ESME_RINVOPTPARAMVAL": "invalid optional parameter value",
    "ESME_RDELIVERYFAILURE": "delivery failed (data_sm)",
    "ESME_RUNKNOWNERR": "unknown error at the SMSC",
}


def meaning(name: str) -> str | None:
    """The plain meaning of a command_status by its ESME_R... name; None if not SMPP's."""
    return MEANINGS.get(name)


def classify_submit(status: int, overrides: Mapping[int, Action] | None = None) -> Action:
    """Action for a submit_sm_resp (or generic_nack) status. Codes not listed are
    permanent failures: an unknown vendor code is safer not retried blindly."""
    if overrides and status in overrides:
        return overrides[status]
    return DEFAULT_SUBMIT_ACTIONS.get(status, Action.FAIL)


def is_auth_failure(status: int) -> bool:
    return status in AUTH_FAILURES
