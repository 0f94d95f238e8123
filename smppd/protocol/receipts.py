"""Delivery receipts: recognising them, and reading id, state, error and dates.

A deliver_sm (or data_sm) is a receipt because of its esm_class message-type bits,
never because its text looks like one: a subscriber can send "id:1 stat:DELIVRD".
The TLVs receipted_message_id / message_state / network_error_code win over the
text when present; the text is parsed tolerantly because every vendor writes it
differently (field order, case, missing fields, 10- or 12-digit dates, free-form err).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ..status import Status
from .constants import ESM_TYPE_MASK, RECEIPT_TYPES
from .pdu import Pdu

# stat: values seen in the wild -> (status vocabulary, final?)
_STAT_TEXT: dict[str, tuple[str, bool]] = {
    "DELIVRD": (Status.DELIVERED, True),
    "DELIVERED": (Status.DELIVERED, True),
    "UNDELIV": (Status.UNDELIVERED, True),
    "UNDELIVERABLE": (Status.UNDELIVERED, True),
    "UNDELIVERED": (Status.UNDELIVERED, True),
    "FAILED": (Status.UNDELIVERED, True),
    "EXPIRED": (Status.EXPIRED, True),
    "DELETED": (Status.DELETED, True),
    "REJECTD": (Status.REJECTED, True),
    "REJECTED": (Status.REJECTED, True),
    "UNKNOWN": (Status.UNKNOWN, False),
    "ACCEPTD": (Status.SUBMITTED, False),
    "ACCEPTED": (Status.SUBMITTED, False),
    "ENROUTE": (Status.SUBMITTED, False),
    "SCHEDULED": (Status.SUBMITTED, False),
    "SCHEDLD": (Status.SUBMITTED, False),
    "BUFFERED": (Status.SUBMITTED, False),
}

# message_state TLV (SMPP 3.4 5.2.28; 9 = SKIPPED from SMPP 5.0)
_MESSAGE_STATE: dict[int, tuple[str, str, bool]] = {
    1: ("ENROUTE", Status.SUBMITTED, False),
    2: ("DELIVRD", Status.DELIVERED, True),
    3: ("EXPIRED", Status.EXPIRED, True),
    4: ("DELETED", Status.DELETED, True),
    5: ("UNDELIV", Status.UNDELIVERED, True),
    6: ("ACCEPTD", Status.SUBMITTED, False),
    7: ("UNKNOWN", Status.UNKNOWN, False),
    8: ("REJECTD", Status.REJECTED, True),
    9: ("SKIPPED", Status.UNDELIVERED, True),
}

_KEY_RE = re.compile(
    r"(?:^|(?<=[\s,;]))(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:\s*",
    re.IGNORECASE)


class ReceiptError(ValueError):
    """A receipt without a message id or a recognisable state."""


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str  # as the SMSC wrote it; IdPolicy turns it into a match key
    stat: str  # the SMSC's word, upper-case (DELIVRD, UNDELIV, ...)
    status: str  # smppd's vocabulary
    final: bool
    error: str | None = None  # err: from the text, or the network error code
    body_text: str = ""
    network_error_code: bytes | None = None
    tlv_id: str | None = None  # receipted_message_id, when the SMSC sent it

    # The text fields and dates are read on demand: when the TLVs carry the id and a
    # delivered state, the hot path (matching and status) needs neither, and the text
    # parse was most of a receipt's cost.
    @property
    def text_fields(self) -> dict[str, str]:
        return parse_text(self.body_text)

    @property
    def text_id(self) -> str | None:
        """The id: field of the text (parsed now if the TLVs made it unnecessary)."""
        if self.tlv_id is None:
            return self.message_id
        value = (self.text_fields.get("id") or "").strip().strip("\x00")
        return value or None

    @property
    def submit_date(self) -> datetime | None:
        return parse_date(self.text_fields.get("submit date"))

    @property
    def done_date(self) -> datetime | None:
        return parse_date(self.text_fields.get("done date"))


def is_receipt(pdu: Pdu) -> bool:
    """True for an SMSC delivery receipt or intermediate notification (esm_class bits)."""
    return (pdu.fields.get("esm_class", 0) & ESM_TYPE_MASK) in RECEIPT_TYPES


def parse_text(text: str) -> dict[str, str]:
    """Fields of a receipt's text form, keys lower-cased with '_' for blanks.

    `text:` runs to the end (it may contain anything, including 'stat:').
    """
    fields: dict[str, str] = {}
    matches = list(_KEY_RE.finditer(text))
    for index, match in enumerate(matches):
        key = match.group(1).lower().replace("_", " ")
        key = {"submitdate": "submit date", "donedate": "done date"}.get(key, key)
        if key == "text":
            fields["text"] = text[match.end():]
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        fields.setdefault(key, text[match.end():end].strip().rstrip(",;").strip())
    return fields


def parse_date(value: str | None) -> datetime | None:
    """YYMMDDhhmm or YYMMDDhhmmss (some SMSCs add a 4-digit year); None if unreadable."""
    if not value:
        return None
    digits = value.strip()
    formats = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S", 14: "%Y%m%d%H%M%S"}
    fmt = formats.get(len(digits))
    if fmt is None or not digits.isdigit():
        return None
    try:
        return datetime.strptime(digits, fmt)
    except ValueError:
        return None


def parse(pdu: Pdu, body_text: str | None = None) -> Receipt:
    """Read a receipt PDU. `body_text` is its decoded short_message/message_payload (the
    caller knows the SMSC's charset); without it the octets are read as Latin-1.

    Raises ReceiptError when neither TLVs nor text give an id and a state.
    """
    if body_text is None:
        raw = pdu.fields.get("short_message") or pdu.fields.get("message_payload") or b""
        body_text = raw.decode("latin-1")
    state_tlv = pdu.fields.get("message_state")
    tlv_id = pdu.fields.get("receipted_message_id")
    known_state = _MESSAGE_STATE.get(state_tlv) if state_tlv is not None else None
    needs_text = not tlv_id or known_state is None or known_state[1] != Status.DELIVERED
    text_fields = parse_text(body_text) if needs_text else {}

    message_id = tlv_id or text_fields.get("id") or ""
    message_id = message_id.strip().strip("\x00")
    if not message_id:
        raise ReceiptError("receipt has no message id (no receipted_message_id TLV, no id:)")

    if known_state is not None:
        stat, status, final = known_state
    else:
        stat = (text_fields.get("stat") or "").strip().upper()
        if stat not in _STAT_TEXT:
            raise ReceiptError(f"receipt for {message_id!r} has no recognisable state "
                               f"(stat:{stat!r}, message_state={state_tlv!r})")
        status, final = _STAT_TEXT[stat]

    network_error = pdu.fields.get("network_error_code")
    error = text_fields.get("err") or None
    if network_error and len(network_error) == 3:
        error = f"{network_error[0]}:{int.from_bytes(network_error[1:], 'big')}"
    return Receipt(
        message_id=message_id,
        stat=stat,
        status=status,
        final=final,
        error=error,
        body_text=body_text,
        network_error_code=network_error,
        tlv_id=(tlv_id.strip().strip("\x00") or None) if tlv_id else None,
    )


def format_text(message_id: str, stat: str, *, sub: int = 1, dlvrd: int = 1, err: str = "000",
                submit: datetime | None = None, done: datetime | None = None,
                text: str = "") -> str:
    """The SMPP 3.4 Appendix B receipt text (used by the fake SMSC)."""
    submit = submit or datetime.now()
    done = done or submit
    return (f"id:{message_id} sub:{sub:03d} dlvrd:{dlvrd:03d} "
            f"submit date:{submit:%y%m%d%H%M} done date:{done:%y%m%d%H%M} "
            f"stat:{stat} err:{err} text:{text[:20]}")


def message_state_for(stat: str) -> int | None:
    for value, (name, _status, _final) in _MESSAGE_STATE.items():
        if name == stat:
            return value
    return None
