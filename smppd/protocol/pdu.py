"""PDU encode/decode driven by smpplib's command tables.

smpplib knows the structure of every SMPP 3.4 PDU (field names, order, sizes, TLV
tags), and that knowledge is used here as-is. Its own parse/generate paths are not:
they raise on an unknown TLV (so one vendor TLV drops a receipt), lose the last
character of a string TLV sent without its NUL (so a receipted_message_id no longer
matches), truncate over-long strings silently, need a client object just to parse,
and walk tables linearly on every call (about 45 us a PDU). The walker below compiles
the same tables once into per-command plans, keeps unknown TLVs raw, and turns every
malformation into one exception type, PduDecodeError, carrying the command_status a
generic_nack should answer with.
"""

from __future__ import annotations

import struct
from typing import Any

from smpplib import command as _smpplib_command
from smpplib import consts as _smpplib_consts
from smpplib.ptypes import flag as _flag_type
from smpplib.ptypes import ostr as _ostr_type

from .constants import (
    COMMAND_IDS,
    COMMAND_NAMES,
    ESME_RINVCMDID,
    ESME_RINVCMDLEN,
    ESME_RINVOPTPARSTREAM,
    RESPONSE_BIT,
)

HEADER = struct.Struct(">IIII")
HEADER_SIZE = 16
_TLV_HEADER = struct.Struct(">HH")

# Field kinds in a compiled plan.
_INT1, _INT2, _INT4, _CSTR, _SHORT_MESSAGE, _OSTR, _FLAG = range(7)
_INT_KINDS = {1: _INT1, 2: _INT2, 4: _INT4}
_INT_SIZES = {_INT1: 1, _INT2: 2, _INT4: 4}

TLV_TAGS: dict[str, int] = dict(_smpplib_consts.OPTIONAL_PARAMS)

# smpplib's tables disagree with the SMPP 3.4 spec on a few TLV sizes.
_TLV_SIZE_FIXES = {"source_addr_subunit": 1, "dest_addr_subunit": 1}


class PduDecodeError(ValueError):
    """A PDU that cannot be decoded. `status` is what a generic_nack should carry."""

    def __init__(self, message: str, *, status: int, sequence: int = 0,
                 command_id: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.sequence = sequence
        self.command_id = command_id


class PduEncodeError(ValueError):
    """A PDU smppd was asked to send that SMPP cannot carry (names the field)."""


class Pdu:
    """One SMPP PDU: header values, named fields (mandatory and known TLVs), raw unknown TLVs.

    Unknown TLVs are kept as (tag, value) pairs so vendor data reaches the MO record
    instead of being dropped or failing the decode.
    """

    __slots__ = ("command", "fields", "sequence", "status", "unknown_tlvs")

    def __init__(self, command: str, sequence: int = 0, status: int = 0,
                 fields: dict[str, Any] | None = None,
                 unknown_tlvs: list[tuple[int, bytes]] | None = None) -> None:
        self.command = command
        self.sequence = sequence
        self.status = status
        self.fields = fields if fields is not None else {}
        self.unknown_tlvs = unknown_tlvs if unknown_tlvs is not None else []

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    @property
    def command_id(self) -> int:
        return COMMAND_IDS[self.command]

    @property
    def is_response(self) -> bool:
        return bool(COMMAND_IDS[self.command] & RESPONSE_BIT)

    def __repr__(self) -> str:
        return (f"Pdu({self.command!r}, seq={self.sequence}, status=0x{self.status:X}, "
                f"fields={self.fields!r}, unknown_tlvs={self.unknown_tlvs!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pdu):
            return NotImplemented
        return (self.command, self.sequence, self.status, self.fields, self.unknown_tlvs) == (
            other.command, other.sequence, other.status, other.fields, other.unknown_tlvs)

    __hash__ = None  # type: ignore[assignment]


class _Plan:
    """Mandatory fields of one command, in wire order, and which names are TLVs."""

    __slots__ = ("mandatory", "tlv_names")

    def __init__(self, mandatory: tuple[tuple[str, int, int], ...],
                 tlv_names: frozenset[str]) -> None:
        self.mandatory = mandatory  # (name, kind, max_length for strings / size)
        self.tlv_names = tlv_names


def _kind_of(param: Any) -> int:
    if param.type is int:
        return _INT_KINDS[param.size]
    if param.type is str:
        return _CSTR
    if param.type is _ostr_type:
        return _SHORT_MESSAGE if getattr(param, "len_field", None) else _OSTR
    if param.type is _flag_type:
        return _FLAG
    raise TypeError(f"unsupported smpplib parameter type {param.type!r}")


def _compile_plans() -> tuple[dict[str, _Plan], dict[int, tuple[str, int, int]]]:
    plans: dict[str, _Plan] = {}
    tlv_kinds: dict[int, tuple[str, int, int]] = {}
    for name in COMMAND_IDS:
        try:
            cls = type(_smpplib_command.factory(name, sequence=1))
        except Exception:  # smpplib has no class for it (cancel_sm, submit_multi, ...)
            continue
        mandatory_override = getattr(cls, "mandatory_fields", ())
        mandatory: list[tuple[str, int, int]] = []
        tlvs: set[str] = set()
        for field in cls.params_order:
            param = cls.params[field]
            is_tlv = field in TLV_TAGS and field not in mandatory_override
            if is_tlv:
                tlvs.add(field)
                kind = _kind_of(param)
                size = _TLV_SIZE_FIXES.get(field, getattr(param, "size", 0))
                if kind in _INT_SIZES:
                    kind = _INT_KINDS[size]
                tlv_kinds.setdefault(TLV_TAGS[field], (field, kind, size))
                continue
            if field == "sm_length":
                continue  # derived from short_message
            kind = _kind_of(param)
            limit = getattr(param, "max", getattr(param, "size", 0))
            mandatory.append((field, kind, limit))
        plans[name] = _Plan(tuple(mandatory), frozenset(tlvs))
    # TLVs smpplib lists globally but attaches to no command class we compile.
    for field, tag in TLV_TAGS.items():
        tlv_kinds.setdefault(tag, (field, _OSTR, 0))
    return plans, tlv_kinds


_PLANS, _TLV_KINDS = _compile_plans()


def encode(pdu: Pdu) -> bytes:
    """Serialise a PDU. Raises PduEncodeError naming the field when a value cannot be sent."""
    plan = _PLANS.get(pdu.command)
    if plan is None:
        raise PduEncodeError(f"command {pdu.command!r} is not supported")
    fields = pdu.fields
    out = bytearray(HEADER_SIZE)
    for name, kind, limit in plan.mandatory:
        value = fields.get(name)
        if kind == _INT1:
            out.append(value or 0)
        elif kind == _CSTR:
            raw = _text_bytes(name, value)
            if limit and len(raw) >= limit:
                raise PduEncodeError(
                    f"{pdu.command}.{name}: {len(raw)} octets, at most {limit - 1} allowed")
            if b"\x00" in raw:
                raise PduEncodeError(f"{pdu.command}.{name}: contains a NUL octet")
            out += raw
            out.append(0)
        elif kind == _SHORT_MESSAGE:
            raw = value or b""
            if len(raw) > 254:
                raise PduEncodeError(
                    f"{pdu.command}.{name}: {len(raw)} octets, at most 254 allowed "
                    "(use message_payload)")
            if raw and fields.get("message_payload"):
                raise PduEncodeError(
                    f"{pdu.command}: short_message and message_payload are mutually exclusive")
            out.append(len(raw))
            out += raw
        elif kind == _INT2:
            out += (value or 0).to_bytes(2, "big")
        elif kind == _INT4:
            out += (value or 0).to_bytes(4, "big")
        else:  # pragma: no cover - smpplib has no other mandatory kinds
            raise PduEncodeError(f"{pdu.command}.{name}: unsupported field kind")
    if fields.get("sar_msg_ref_num") is not None and (fields.get("esm_class") or 0) & 0x40:
        # The handset would see two concatenation schemes and reassemble garbage.
        raise PduEncodeError(f"{pdu.command}: SAR TLVs together with UDHI in esm_class")
    for name, value in fields.items():
        if value is None or name not in plan.tlv_names:
            continue
        out += _encode_tlv(pdu.command, name, value)
    for tag, value in pdu.unknown_tlvs:
        out += _TLV_HEADER.pack(tag, len(value)) + value
    HEADER.pack_into(out, 0, len(out), COMMAND_IDS[pdu.command], pdu.status, pdu.sequence)
    return bytes(out)


def _text_bytes(name: str, value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    try:
        return str(value).encode("ascii")
    except UnicodeEncodeError:
        raise PduEncodeError(f"{name}: {value!r} is not ASCII") from None


def _encode_tlv(command: str, name: str, value: Any) -> bytes:
    tag = TLV_TAGS[name]
    _, kind, size = _TLV_KINDS[tag]
    if kind in _INT_SIZES:
        size = _INT_SIZES[kind]
        try:
            raw = int(value).to_bytes(size, "big")
        except OverflowError:
            raise PduEncodeError(f"{command}.{name}: {value} does not fit {size} octets") from None
    elif kind == _CSTR:
        raw = _text_bytes(name, value) + b"\x00"
    elif kind == _FLAG:
        raw = b""
    else:
        raw = bytes(value)
    if len(raw) > 0xFFFF:
        raise PduEncodeError(f"{command}.{name}: {len(raw)} octets, a TLV holds at most 65535")
    return _TLV_HEADER.pack(tag, len(raw)) + raw


def decode_header(data: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a framed PDU."""
    return HEADER.unpack_from(data, 0)


def decode(data: bytes) -> Pdu:
    """Parse one whole PDU (as delimited by the framer). Never raises anything but
    PduDecodeError, whatever the bytes."""
    if len(data) < HEADER_SIZE:
        raise PduDecodeError(f"PDU of {len(data)} octets is shorter than its header",
                             status=ESME_RINVCMDLEN)
    length, command_id, status, sequence = HEADER.unpack_from(data, 0)
    if length != len(data):
        raise PduDecodeError(f"command_length {length} does not match {len(data)} octets",
                             status=ESME_RINVCMDLEN, sequence=sequence, command_id=command_id)
    name = COMMAND_NAMES.get(command_id)
    plan = _PLANS.get(name) if name else None
    if plan is None:
        raise PduDecodeError(f"unknown or unsupported command_id 0x{command_id:08X}",
                             status=ESME_RINVCMDID, sequence=sequence, command_id=command_id)
    try:
        fields, unknown = _decode_body(name, plan, data)
    except PduDecodeError as exc:
        exc.sequence, exc.command_id = sequence, command_id
        raise
    return Pdu(name, sequence, status, fields, unknown)


def _decode_body(command: str, plan: _Plan, data: bytes
                 ) -> tuple[dict[str, Any], list[tuple[int, bytes]]]:
    end = len(data)
    pos = HEADER_SIZE
    fields: dict[str, Any] = {}
    for name, kind, _limit in plan.mandatory:
        if pos == end:
            # A body may stop at a field boundary: error responses carry no body, and
            # some SMSCs omit trailing empty fields. Missing fields read as empty.
            break
        if kind == _INT1:
            fields[name] = data[pos]
            pos += 1
        elif kind == _CSTR:
            nul = data.find(b"\x00", pos)
            if nul < 0:
                raise PduDecodeError(f"{command}.{name}: C-octet string has no NUL terminator",
                                     status=ESME_RINVCMDLEN)
            fields[name] = data[pos:nul].decode("latin-1")
            pos = nul + 1
        elif kind == _SHORT_MESSAGE:
            length = data[pos]
            pos += 1
            if pos + length > end:
                raise PduDecodeError(
                    f"{command}.sm_length {length} runs past the end of the PDU",
                    status=ESME_RINVCMDLEN)
            fields[name] = data[pos:pos + length]
            pos += length
        else:
            size = _INT_SIZES[kind]
            if pos + size > end:
                raise PduDecodeError(f"{command}.{name}: truncated", status=ESME_RINVCMDLEN)
            fields[name] = int.from_bytes(data[pos:pos + size], "big")
            pos += size
    unknown: list[tuple[int, bytes]] = []
    while pos < end:
        if pos + 4 > end:
            raise PduDecodeError(f"{command}: {end - pos} stray octets after the last TLV",
                                 status=ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEADER.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise PduDecodeError(
                f"{command}: TLV 0x{tag:04X} length {length} runs past the end of the PDU",
                status=ESME_RINVOPTPARSTREAM)
        value = data[pos:pos + length]
        pos += length
        known = _TLV_KINDS.get(tag)
        if known is None:
            unknown.append((tag, value))
            continue
        name, kind, _size = known
        fields[name] = _decode_tlv_value(kind, value)
    return fields, unknown


def _decode_tlv_value(kind: int, value: bytes) -> Any:
    if kind in _INT_SIZES:
        # Take the length the peer sent, not the table's: some SMSCs send a 2-octet
        # value where the spec says 1, and the number is still right.
        return int.from_bytes(value, "big") if value else 0
    if kind == _CSTR:
        # The spec says string TLVs end in NUL; many SMSCs omit it. Drop only a real NUL.
        return value.rstrip(b"\x00").decode("latin-1")
    if kind == _FLAG:
        return True
    return value


def make(command: str, sequence: int = 0, status: int = 0, **fields: Any) -> Pdu:
    """Shorthand for building a PDU in code and tests."""
    return Pdu(command, sequence, status, fields)


def response_to(request: Pdu, status: int = 0, **fields: Any) -> Pdu:
    """The response PDU for a request, echoing its sequence number."""
    return Pdu(request.command + "_resp", request.sequence, status, fields)
