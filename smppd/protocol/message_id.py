"""Matching the message id of a submit_sm_resp with the one in its receipt.

Carriers disagree with themselves: some return hex in submit_sm_resp and decimal in
the receipt, some pad with zeros, some change case; ids can exceed 2**63 or be UUIDs.
Ids stay strings end to end; a numeric format turns an id into the decimal digits of
its value (Python ints are exact, so a 20-digit id survives), which makes
`00B8BE19` (hex) and `12107289` (decimal) the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IdFormat(StrEnum):
    STRING = "string"  # compare as sent, less surrounding blanks and NULs
    HEX = "hex"
    DEC = "dec"


def match_key(raw: str, fmt: IdFormat) -> str:
    """The key an id is matched on. An id that does not parse in the configured
    numeric format keeps its string form (and will not match: the caller counts it)."""
    value = raw.strip().strip("\x00").strip()
    if fmt is IdFormat.STRING:
        return value
    try:
        return str(int(value, 16 if fmt is IdFormat.HEX else 10))
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class IdPolicy:
    submit_resp: IdFormat = IdFormat.STRING
    receipt: IdFormat = IdFormat.STRING

    @classmethod
    def from_kannel(cls, msg_id_type: int) -> IdPolicy:
        """Kannel's msg-id-type: bit 0 set = submit_sm_resp hex, bit 1 set = receipt hex;
        both numeric otherwise."""
        if not 0 <= msg_id_type <= 3:
            raise ValueError(f"msg_id_type: expected 0..3, got {msg_id_type}")
        return cls(IdFormat.HEX if msg_id_type & 1 else IdFormat.DEC,
                   IdFormat.HEX if msg_id_type & 2 else IdFormat.DEC)

    def from_response(self, raw: str) -> str:
        return match_key(raw, self.submit_resp)

    def from_receipt(self, raw: str) -> str:
        return match_key(raw, self.receipt)
