"""Inbound (MO) short messages: user data headers, text, and reassembly of long ones.

Reassembly is keyed on (source, destination, reference, total) so two long messages
from one handset with different references never mix; parts may come in any order,
twice, or never (a group expires after a timeout and is reported, not kept forever).
The raw octets of the parts are joined before decoding, so a sender that cut an
escape sequence or a surrogate pair across parts still reads back whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from . import gsm
from .constants import ESM_UDHI
from .pdu import Pdu
from .text import DEFAULT_PROFILE, CharsetProfile, TextDecodeError, alphabet_of, decode_payload


class UdhError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Concat:
    reference: int
    total: int
    number: int


@dataclass(frozen=True, slots=True)
class Udh:
    length: int  # octets including the UDHL octet
    concat: Concat | None
    elements: tuple[tuple[int, bytes], ...]  # every IE, concatenation included


def parse_udh(data: bytes) -> Udh:
    """Parse the user data header at the start of a short message (UDHI was set)."""
    if not data:
        raise UdhError("UDHI is set but the short message is empty")
    udhl = data[0]
    if udhl + 1 > len(data):
        raise UdhError(f"UDH length {udhl} runs past the {len(data)}-octet short message")
    pos, end = 1, udhl + 1
    elements: list[tuple[int, bytes]] = []
    concat: Concat | None = None
    while pos < end:
        if pos + 2 > end:
            raise UdhError("truncated information element in UDH")
        iei, length = data[pos], data[pos + 1]
        value = data[pos + 2:pos + 2 + length]
        if len(value) != length or pos + 2 + length > end:
            raise UdhError(f"UDH element 0x{iei:02X} length {length} runs past the header")
        elements.append((iei, value))
        if iei == 0x00 and length == 3:
            concat = Concat(value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            concat = Concat((value[0] << 8) | value[1], value[2], value[3])
        pos += 2 + length
    if concat is not None and not 1 <= concat.number <= concat.total:
        raise UdhError(f"concatenation part {concat.number} of {concat.total} is impossible")
    return Udh(end, concat, tuple(elements))


@dataclass(slots=True)
class MoFragment:
    """One deliver_sm/data_sm MO, possibly one part of a longer message."""

    source: str
    destination: str
    data_coding: int
    payload: bytes  # the text octets, UDH removed (GSM septets unpacked)
    concat: Concat | None
    unknown_tlvs: list[tuple[int, bytes]] = field(default_factory=list)
    udh_elements: tuple[tuple[int, bytes], ...] = ()


def fragment_from_pdu(pdu: Pdu, profile: CharsetProfile = DEFAULT_PROFILE) -> MoFragment:
    """Take a deliver_sm/data_sm apart. Raises UdhError for a malformed header."""
    fields = pdu.fields
    raw = fields.get("short_message") or fields.get("message_payload") or b""
    data_coding = fields.get("data_coding", 0)
    concat: Concat | None = None
    elements: tuple[tuple[int, bytes], ...] = ()
    fill = 0
    if fields.get("esm_class", 0) & ESM_UDHI:
        udh = parse_udh(raw)
        concat, elements = udh.concat, udh.elements
        fill = (7 - (udh.length * 8) % 7) % 7
        raw = raw[udh.length:]
    elif fields.get("sar_msg_ref_num") is not None and fields.get("sar_total_segments"):
        concat = Concat(fields["sar_msg_ref_num"], fields["sar_total_segments"],
                        fields.get("sar_segment_seqnum") or 1)
    alphabet = alphabet_of(data_coding)
    septets = alphabet == "gsm" or (alphabet == "dcs0" and profile.dcs0_charset == "gsm")
    if profile.gsm_packed and septets:
        raw = gsm.unpack(raw, fill_bits=fill)
    return MoFragment(fields.get("source_addr", ""), fields.get("destination_addr", ""),
                      data_coding, raw, concat, list(pdu.unknown_tlvs), elements)


@lru_cache(maxsize=64)
def _unpacked(profile: CharsetProfile) -> CharsetProfile:
    """The profile with packing off, made once per profile rather than once per MO
    (a frozen dataclass with a check costs microseconds to build)."""
    return CharsetProfile(profile.dcs0_charset, profile.latin1, gsm_packed=False)


def decode_fragment_text(data_coding: int, payload: bytes,
                         profile: CharsetProfile = DEFAULT_PROFILE) -> str | None:
    """Text of (joined) fragment payloads; septets are already unpacked."""
    try:
        return decode_payload(payload, data_coding, _unpacked(profile))
    except TextDecodeError:
        return None


@dataclass(slots=True)
class MoMessage:
    source: str
    destination: str
    data_coding: int
    payload: bytes
    text: str | None  # None for binary content
    parts: int
    unknown_tlvs: list[tuple[int, bytes]]


@dataclass(slots=True)
class _Group:
    first_seen: float
    total: int
    data_coding: int
    parts: dict[int, MoFragment] = field(default_factory=dict)


GroupKey = tuple[str, str, int, int]


class Reassembler:
    """Collects MO parts until a message is whole. Sans-I/O: time is passed in."""

    def __init__(self, timeout: float = 300.0, profile: CharsetProfile = DEFAULT_PROFILE,
                 max_groups: int = 100_000) -> None:
        self.timeout = timeout
        self.profile = profile
        self.max_groups = max_groups
        self._groups: dict[GroupKey, _Group] = {}
        # Recently completed groups: a redelivered part of a message already handed
        # over is a duplicate, not the start of a new message that will never complete.
        # Kept with the part that completed it, so `withdraw` can reopen the group.
        self._completed: dict[GroupKey, tuple[float, _Group, int]] = {}
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, fragment: MoFragment, now: float) -> MoMessage | None:
        """The whole message once its last missing part arrives; None until then."""
        concat = fragment.concat
        if concat is None or concat.total <= 1:
            return self._message([fragment], fragment.data_coding)
        key = (fragment.source, fragment.destination, concat.reference, concat.total)
        done = self._completed.get(key)
        if done is not None:
            earlier = done[1].parts.get(concat.number)
            if earlier is not None and earlier.payload == fragment.payload:
                self.duplicates += 1
                return None
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self.max_groups:
                oldest = min(self._groups, key=lambda k: self._groups[k].first_seen)
                del self._groups[oldest]
            group = self._groups[key] = _Group(now, concat.total, fragment.data_coding)
        if concat.number in group.parts:
            self.duplicates += 1
            return None
        group.parts[concat.number] = fragment
        if len(group.parts) < group.total:
            return None
        del self._groups[key]
        ordered = [group.parts[n] for n in range(1, group.total + 1)]
        self._completed[key] = (now, group, concat.number)
        return self._message(ordered, group.data_coding)

    def withdraw(self, fragment: MoFragment) -> None:
        """Undo `add` of a part that could not be kept (its deliver_sm is answered
        with an error, so the SMSC sends it again): it leaves its group, and a group
        it had completed opens again without it."""
        concat = fragment.concat
        if concat is None or concat.total <= 1:
            return
        key = (fragment.source, fragment.destination, concat.reference, concat.total)
        group = self._groups.get(key)
        if group is not None:
            if group.parts.get(concat.number) is fragment:
                del group.parts[concat.number]
                if not group.parts:
                    del self._groups[key]
            return
        done = self._completed.get(key)
        if done is not None and done[2] == concat.number \
                and done[1].parts.get(concat.number) is fragment:
            del self._completed[key]
            group = done[1]
            del group.parts[concat.number]
            self._groups[key] = group

    def idle(self) -> bool:
        """Nothing that expire() could ever drop: no group waiting for parts, no
        completed one remembered (for redeliveries of its parts)."""
        return not self._groups and not self._completed

    def expire(self, now: float) -> list[tuple[GroupKey, list[int]]]:
        """Drop groups older than the timeout; returns each key with the parts it had."""
        self._completed = {key: done for key, done in self._completed.items()
                           if now - done[0] < self.timeout}
        expired = [key for key, group in self._groups.items()
                   if now - group.first_seen >= self.timeout]
        return [(key, sorted(self._groups.pop(key).parts)) for key in expired]

    def _message(self, fragments: list[MoFragment], data_coding: int) -> MoMessage:
        payload = b"".join(f.payload for f in fragments)
        tlvs = [tlv for f in fragments for tlv in f.unknown_tlvs]
        first = fragments[0]
        return MoMessage(first.source, first.destination, data_coding, payload,
                         decode_fragment_text(data_coding, payload, self.profile),
                         len(fragments), tlvs)
