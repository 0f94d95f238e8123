"""What a status or an error code means, in words a customer reads (translated where
it is shown). The history's "Information" section lists every status; a row's
details explain its error."""

from __future__ import annotations

import re

from ..status import Status
from .i18n import N_

STATUSES: dict[str, str] = {
    Status.QUEUED: N_("Accepted and charged; waiting to be sent."),
    Status.SCHEDULED: N_("Waiting for its job's start time."),
    Status.SUBMITTED: N_("The operator's SMSC accepted it; waiting for the delivery "
                         "receipt."),
    Status.DELIVERED: N_("Delivered to the phone (every part of a long message)."),
    Status.UNDELIVERED: N_("The network could not deliver it: the number is not in "
                           "service, the phone is barred or stayed off."),
    Status.EXPIRED: N_("The network gave up when its validity period ran out (the phone "
                       "stayed unreachable)."),
    Status.REJECTED: N_("The SMSC refused it (for example an invalid number or sender); "
                        "parts it never accepted were refunded."),
    Status.DELETED: N_("Deleted by the network before it was delivered."),
    Status.UNKNOWN: N_("The SMSC did not answer in time, so it may have been sent. It is "
                       "charged and not sent again; a late receipt still settles it."),
    Status.FAILED: N_("It could not be sent after repeated temporary errors; refunded."),
    Status.CANCELLED: N_("Its job was stopped before it was sent; refunded."),
}

_ERRORS: dict[str, str] = {
    "ESME_RINVDSTADR": N_("The SMSC says the recipient's number is invalid."),
    "ESME_RINVSRCADR": N_("The SMSC refused the sender (not allowed for this account or "
                          "badly formed)."),
    "ESME_RINVMSGLEN": N_("The SMSC refused the length of the text."),
    "ESME_RTHROTTLED": N_("The SMSC asked to slow down too many times."),
    "ESME_RMSGQFUL": N_("The SMSC's queue was full too many times."),
    "ESME_RSYSERR": N_("The SMSC reported an internal error too many times."),
    "ESME_RSUBMITFAIL": N_("The SMSC could not accept the message."),
    "ESME_RINVDCS": N_("The SMSC refused the text's encoding."),
    "ESME_RX_P_APPN": N_("The SMSC refused it for good (application error)."),
    "ESME_RX_T_APPN": N_("The SMSC had a temporary application error too many times."),
    "ESME_RINVESMCLASS": N_("The SMSC refused the message type."),
    "ESME_RINVNUMDESTS": N_("The SMSC refused the number of recipients."),
    "job stopped": N_("The job was stopped before this message was sent."),
    "no message_id": N_("The SMSC answered without a message id, so its receipt could "
                        "never be matched."),
}
_NETWORK = re.compile(r"^(\d+):(\d+)$")


def status(name: str) -> str:
    return STATUSES.get(name, "")


def error(code: str | None) -> tuple[str, dict[str, str]] | None:
    """(message to translate, values) for an error code, or None when there is none."""
    if not code:
        return None
    if code in _ERRORS:
        return _ERRORS[code], {}
    if code.startswith("unsendable"):
        return N_("The text could not be encoded for the SMSC of this route."), {}
    network = _NETWORK.match(code)
    if network:
        return N_("The network reported error %(code)s (network type %(type)s) in the "
                  "delivery receipt."), {"code": network.group(2), "type": network.group(1)}
    if code.startswith("ESME_R") or code.startswith("0x"):
        return N_("The SMSC answered with the error %(code)s."), {"code": code}
    return N_("The SMSC reported: %(code)s."), {"code": code}

# A vote's outcome, and the reply sent for it (the poll form's labels).
OUTCOMES = {"accepted": N_("counted"), "out_of_window": N_("outside the poll's time"),
            "over_limit": N_("over the vote limit"), "not_allowed": N_("not in an allowed group"),
            "unknown_option": N_("no such option")}
REPLIES = {"default": N_("After a counted vote"), "out_of_window": N_("Outside the poll's time"),
           "over_limit": N_("Over the vote limit"), "not_allowed": N_("Not in an allowed group"),
           "unknown_option": N_("No such option"), "no_codes": N_("No discount code left")}

# Words the pages show as they are stored (statuses, job states, roles, channels):
# listed here so that the catalog has them; pages translate them with _(name).
WORDS = (N_("queued"), N_("scheduled"), N_("submitted"), N_("delivered"), N_("undelivered"),
         N_("expired"), N_("rejected"), N_("deleted"), N_("unknown"), N_("failed"),
         N_("cancelled"), N_("running"), N_("paused"), N_("stopped"), N_("completed"),
         N_("ready"), N_("owner"), N_("sender"), N_("viewer"), N_("api"), N_("job"),
         N_("portal"), N_("bound"), N_("connecting"), N_("binding"), N_("backoff"),
         N_("auth_failed"), N_("idle"), N_("dedicated"), N_("shared"), N_("shortcode"),
         N_("suspended"), N_("reconnect"), N_("suspend"), N_("resume"))
