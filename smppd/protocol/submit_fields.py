"""The fields of a submit_sm beyond its text: addresses with their TON/NPI, and the
receipt request. The text fields come from segmentation.split."""

from __future__ import annotations

from typing import Any

from . import constants as c


def addresses(sender: str, recipient: str) -> dict[str, Any]:
    """A numeric sender is a number (international when written with '+' or longer
    than a national short code), anything else is alphanumeric (TON 5, NPI 0;
    checklist 33). The recipient is E.164 digits."""
    if sender.isdigit() or (sender.startswith("+") and sender[1:].isdigit()):
        digits = sender.lstrip("+")
        international = sender.startswith("+") or len(digits) > 8
        fields = {"source_addr": digits,
                  "source_addr_ton": c.TON_INTERNATIONAL if international else c.TON_UNKNOWN,
                  "source_addr_npi": c.NPI_ISDN}
    else:
        fields = {"source_addr": sender, "source_addr_ton": c.TON_ALPHANUMERIC,
                  "source_addr_npi": c.NPI_UNKNOWN}
    fields.update(destination_addr=recipient, dest_addr_ton=c.TON_INTERNATIONAL,
                  dest_addr_npi=c.NPI_ISDN)
    return fields


def submit_sm(part: dict[str, Any], sender: str, recipient: str,
              registered_delivery: int = c.REGISTERED_DELIVERY_FINAL) -> dict[str, Any]:
    """One part's complete submit_sm fields."""
    fields = dict(part)
    fields.update(addresses(sender, recipient))
    fields["registered_delivery"] = registered_delivery
    return fields
