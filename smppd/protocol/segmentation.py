"""Splitting a text into submit_sm parts, and predicting the split before sending.

Written here rather than taken from smpplib because smpplib's `make_parts` cuts GSM
escape sequences and UTF-16 surrogate pairs across parts and uses a random 8-bit
reference. Here a split happens only between characters (a Python character is a
whole code point, so an emoji's surrogate pair and an extension character's ESC stay
with their character), and the reference comes from the caller, normally a
per-destination counter (ConcatReferences).

Part sizes are what a customer is charged for: 160/153 septets, 140/134 octets,
70/67 UCS-2 code units with an 8-bit reference UDH; one unit less with a 16-bit
reference. SAR and message_payload carry no UDH of ours but the SMSC adds one on the
air, so they are charged like an 8-bit UDH split.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from . import gsm
from .constants import ESM_UDHI
from .text import CharsetProfile, Encoding, choose_encoding, data_coding_for, encode_chunk


class SplitMode(StrEnum):
    UDH = "udh"  # UDH concatenation IE with an 8-bit reference
    UDH16 = "udh16"  # UDH concatenation IE with a 16-bit reference
    SAR = "sar"  # sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs
    PAYLOAD = "payload"  # the whole text in one message_payload TLV; the SMSC splits


MAX_PARTS_LIMIT = 255  # the concatenation IE counts parts in one octet


@dataclass(frozen=True, slots=True)
class SplitPolicy:
    mode: SplitMode = SplitMode.UDH
    max_parts: int = MAX_PARTS_LIMIT

    def __post_init__(self) -> None:
        if not 1 <= self.max_parts <= MAX_PARTS_LIMIT:
            raise ValueError(f"max_parts: expected 1..{MAX_PARTS_LIMIT}, got {self.max_parts}")


DEFAULT_POLICY = SplitPolicy()

_SINGLE_CAPACITY = {Encoding.GSM: 160, Encoding.LATIN1: 140, Encoding.UCS2: 70}
_UDH8_CAPACITY = {Encoding.GSM: 153, Encoding.LATIN1: 134, Encoding.UCS2: 67}
_UDH16_CAPACITY = {Encoding.GSM: 152, Encoding.LATIN1: 133, Encoding.UCS2: 66}


class TooManyParts(ValueError):
    """The text needs more parts than the SMSC (or protocol) allows; never truncated."""

    def __init__(self, needed: int, allowed: int) -> None:
        super().__init__(f"text needs {needed} parts, at most {allowed} are allowed")
        self.needed = needed
        self.allowed = allowed


@dataclass(frozen=True, slots=True)
class TextInfo:
    """What a text will cost before it is sent."""

    encoding: Encoding
    parts: int
    units: int  # septets (gsm), octets (latin1) or UTF-16 code units (ucs2)
    data_coding: int


def _unit_cost(encoding: Encoding) -> Callable[[str], int]:
    if encoding is Encoding.GSM:
        return gsm.COST.__getitem__
    if encoding is Encoding.UCS2:
        return lambda ch: 2 if ord(ch) > 0xFFFF else 1
    return lambda ch: 1


def _total_units(text: str, encoding: Encoding) -> int:
    if encoding is Encoding.LATIN1:
        return len(text)
    if encoding is Encoding.GSM:
        return gsm.septet_count(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _chunks(text: str, encoding: Encoding, mode: SplitMode) -> list[str]:
    """The text cut into per-part pieces, between characters only."""
    if _total_units(text, encoding) <= _SINGLE_CAPACITY[encoding]:
        return [text]
    capacity = (_UDH16_CAPACITY if mode is SplitMode.UDH16 else _UDH8_CAPACITY)[encoding]
    cost = _unit_cost(encoding)
    pieces: list[str] = []
    start = used = 0
    for index, ch in enumerate(text):
        units = cost(ch)
        if used + units > capacity:
            pieces.append(text[start:index])
            start, used = index, 0
        used += units
    pieces.append(text[start:])
    return pieces


def _check_text(text: str) -> None:
    try:
        text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text contains an unpaired surrogate at position {exc.start}") from None


def describe(text: str, profile: CharsetProfile | None = None,
             policy: SplitPolicy = DEFAULT_POLICY, encoding: Encoding | None = None) -> TextInfo:
    """Encoding and part count a text will take, without building the parts.

    Raises TooManyParts when the policy's max_parts is exceeded, ValueError for a
    text no encoding can carry (an unpaired surrogate) or a requested encoding that
    does not fit the text.
    """
    profile = profile or CharsetProfile()
    _check_text(text)
    chosen = choose_encoding(text, profile, encoding)
    parts = len(_chunks(text, chosen, policy.mode))
    if parts > policy.max_parts:
        raise TooManyParts(parts, policy.max_parts)
    return TextInfo(chosen, parts, _total_units(text, chosen), data_coding_for(chosen))


def split(text: str, profile: CharsetProfile | None = None,
          policy: SplitPolicy = DEFAULT_POLICY, encoding: Encoding | None = None,
          reference: int | Callable[[], int] = 0) -> tuple[TextInfo, list[dict[str, Any]]]:
    """The submit_sm fields (short_message or message_payload, data_coding, esm_class,
    SAR TLVs) of each part, in order. `reference` is called only for a multi-part text."""
    profile = profile or CharsetProfile()
    _check_text(text)
    chosen = choose_encoding(text, profile, encoding)
    mode = policy.mode
    pieces = _chunks(text, chosen, mode)
    total = len(pieces)
    if total > policy.max_parts:
        raise TooManyParts(total, policy.max_parts)
    info = TextInfo(chosen, total, _total_units(text, chosen), data_coding_for(chosen))
    dc = info.data_coding
    if mode is SplitMode.PAYLOAD and total > 1:
        payload = encode_chunk(text, chosen, profile)
        return info, [{"message_payload": payload, "data_coding": dc, "esm_class": 0}]
    if total == 1:
        return info, [{"short_message": encode_chunk(text, chosen, profile),
                       "data_coding": dc, "esm_class": 0}]
    ref = reference() if callable(reference) else reference
    parts: list[dict[str, Any]] = []
    for number, piece in enumerate(pieces, start=1):
        if mode is SplitMode.SAR:
            parts.append({"short_message": encode_chunk(piece, chosen, profile),
                          "data_coding": dc, "esm_class": 0,
                          "sar_msg_ref_num": ref & 0xFFFF, "sar_total_segments": total,
                          "sar_segment_seqnum": number})
            continue
        udh = concat_udh(ref, total, number, sixteen_bit=mode is SplitMode.UDH16)
        fill = (7 - (len(udh) * 8) % 7) % 7
        body = encode_chunk(piece, chosen, profile, fill_bits=fill)
        parts.append({"short_message": udh + body, "data_coding": dc, "esm_class": ESM_UDHI})
    return info, parts


def concat_udh(reference: int, total: int, number: int, sixteen_bit: bool = False) -> bytes:
    """A user data header holding only the concatenation IE (00 or 08)."""
    if sixteen_bit:
        return bytes([6, 0x08, 4, (reference >> 8) & 0xFF, reference & 0xFF, total, number])
    return bytes([5, 0x00, 3, reference & 0xFF, total, number])


class ConcatReferences:
    """Concatenation references counted per destination.

    A random or global 8-bit reference makes two long messages to one handset collide
    within the handset's reassembly window; a per-destination counter cannot until 256
    (or 65,536) long messages to that one number are in flight together. Each new
    destination starts at a random value so a restart does not reuse the last refs.
    Memory is bounded: the least recently used destinations are forgotten.
    """

    def __init__(self, bits: int = 8, max_destinations: int = 100_000,
                 rng: random.Random | None = None) -> None:
        self._modulus = 1 << bits
        self._max = max_destinations
        self._next: OrderedDict[str, int] = OrderedDict()
        self._rng = rng or random.Random()

    def next(self, destination: str) -> int:
        table = self._next
        value = table.pop(destination, None)
        if value is None:
            value = self._rng.randrange(self._modulus)
            if len(table) >= self._max:
                table.popitem(last=False)
        table[destination] = (value + 1) % self._modulus
        return value
