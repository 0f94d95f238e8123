"""Plain-language explanations of statuses and of the error codes a message can carry.

A message's `error_code` is one of: an SMPP command_status name from a submit_sm_resp
(ESME_RINVDSTADR), a vendor command_status smppd has no name for (0x00000401), a
receipt's `err:` field or network_error_code TLV (001, 3:27; their meaning is the
operator's, so they are explained generically and shown raw), or a reason smppd wrote
itself (no response within 30 s, unsendable: ...).
"""

from __future__ import annotations

import re

from . import status as st
from .protocol import command_status

_VENDOR_STATUS = re.compile(r"^0x[0-9A-Fa-f]{8}$")
_NETWORK_TYPES = {"1": "ANSI-136", "2": "IS-95", "3": "GSM", "4": "ANSI-41"}


def status_description(status: str) -> str:
    return st.DESCRIPTIONS.get(status, "")


def explain_error(code: str) -> tuple[str, str]:
    """(kind, description) of an error code as stored on a message."""
    meaning = command_status.meaning(code)
    if meaning is not None:
        return "command_status", f"The SMSC answered {code}: {meaning}."
    if _VENDOR_STATUS.match(code):
        return "command_status", (f"The SMSC answered with its own code {code} (not an "
                                  "SMPP standard code; its meaning is the operator's).")
    if code.startswith("no response") or code.startswith("connection") or \
            code.startswith("unbound"):
        return "smppd", f"smppd got no answer from the SMSC ({code}); the outcome is unknown."
    if code.startswith("unsendable"):
        return "smppd", f"smppd could not encode it for the SMSC ({code})."
    if code == "no message_id":
        return "smppd", "The SMSC accepted it without a message id, so it cannot be followed."
    network, sep, number = code.partition(":")
    if sep and network in _NETWORK_TYPES and number.isdigit():
        return "receipt", (f"The delivery report carried {_NETWORK_TYPES[network]} network "
                           f"error {number} (the network's reason for not delivering).")
    return "receipt", (f"The operator's delivery report gave error code {code} "
                       "(err: field; the codes are the operator's own).")


def describe_error(code: str | None) -> str | None:
    return None if not code else explain_error(code)[1]
