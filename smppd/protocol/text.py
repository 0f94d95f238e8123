"""Which encoding a text takes on a given SMSC, and decoding of received short messages.

Encodings are named by what the handset receives and what the customer is charged for:
`gsm` (7-bit, 160/153 septets a part), `latin1` (8-bit, data_coding 3, 140/134 octets)
and `ucs2` (UTF-16BE without BOM, 70/67 code units). How `gsm` travels over SMPP
depends on the SMSC: data_coding 0 means "SMSC default alphabet", which some carriers
read as GSM 03.38 septets and others as Latin-1 (`dcs0_charset`), and a few want the
septets packed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from . import gsm
from .constants import DC_DEFAULT, DC_LATIN1, DC_UCS2


class Encoding(StrEnum):
    GSM = "gsm"
    LATIN1 = "latin1"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class CharsetProfile:
    """What one SMSC accepts. Per connector; the defaults suit most carriers."""

    dcs0_charset: str = "gsm"  # what data_coding 0 means at this SMSC: gsm | latin1
    latin1: bool = False  # the SMSC accepts data_coding 3 (Latin-1) for MT
    gsm_packed: bool = False  # the SMSC wants GSM septets packed (rare)

    def __post_init__(self) -> None:
        if self.dcs0_charset not in ("gsm", "latin1"):
            raise ValueError(f"dcs0_charset: expected gsm or latin1, got {self.dcs0_charset!r}")


DEFAULT_PROFILE = CharsetProfile()


def _latin1_ok(text: str) -> bool:
    return all(ord(ch) < 256 for ch in text)


def can_encode(text: str, encoding: Encoding, profile: CharsetProfile = DEFAULT_PROFILE) -> bool:
    if encoding is Encoding.UCS2:
        return True
    if encoding is Encoding.LATIN1:
        return profile.latin1 and _latin1_ok(text)
    if not gsm.is_gsm(text):
        return False
    # A Latin-1 SMSC converts data_coding 0 to GSM itself; it can only be given what
    # Latin-1 holds ('€' and the Greek capitals are GSM but not Latin-1).
    return profile.dcs0_charset == "gsm" or _latin1_ok(text)


def choose_encoding(text: str, profile: CharsetProfile = DEFAULT_PROFILE,
                    requested: Encoding | None = None) -> Encoding:
    """The cheapest encoding that carries the text exactly, or `requested` if it can."""
    if requested is not None:
        if not can_encode(text, requested, profile):
            raise ValueError(f"text cannot be sent as {requested.value} on this SMSC")
        return requested
    for candidate in (Encoding.GSM, Encoding.LATIN1):
        if can_encode(text, candidate, profile):
            return candidate
    return Encoding.UCS2


def data_coding_for(encoding: Encoding) -> int:
    if encoding is Encoding.GSM:
        return DC_DEFAULT
    if encoding is Encoding.LATIN1:
        return DC_LATIN1
    return DC_UCS2


def encode_chunk(text: str, encoding: Encoding, profile: CharsetProfile = DEFAULT_PROFILE,
                 fill_bits: int = 0) -> bytes:
    """Wire octets of one part's text (the UDH, if any, is not included)."""
    if encoding is Encoding.UCS2:
        return text.encode("utf-16-be")  # no BOM, surrogate pairs for non-BMP
    if encoding is Encoding.LATIN1:
        return text.encode("latin-1")
    if profile.dcs0_charset == "latin1":
        return text.encode("latin-1")
    septets = gsm.encode(text)
    return gsm.pack(septets, fill_bits) if profile.gsm_packed else septets


class TextDecodeError(ValueError):
    pass


def decode_payload(payload: bytes, data_coding: int,
                   profile: CharsetProfile = DEFAULT_PROFILE, fill_bits: int = 0) -> str | None:
    """Text of a received short message body (UDH already removed), or None for binary.

    Follows the data_coding groups of 3GPP TS 23.038 section 4 for the values SMSCs
    actually send; anything unrecognised is treated as binary rather than guessed.
    """
    alphabet = alphabet_of(data_coding)
    if alphabet == "dcs0":
        if profile.dcs0_charset == "latin1":
            return payload.decode("latin-1")
        alphabet = "gsm"
    if alphabet == "gsm":
        if profile.gsm_packed:
            payload = gsm.unpack(payload, fill_bits=fill_bits)
        return gsm.decode(payload)
    if alphabet == "latin1":
        return payload.decode("latin-1")
    if alphabet == "ucs2":
        if len(payload) % 2:
            raise TextDecodeError(f"UCS-2 payload has an odd length ({len(payload)} octets)")
        return payload.decode("utf-16-be", errors="replace")
    if alphabet.startswith("iso8859"):
        return payload.decode(alphabet, errors="replace")
    return None


# data_coding 0..15 follow SMPP 3.4's own table (5.2.19), not the GSM DCS groups.
_SMPP_DATA_CODING = {
    0: "dcs0", 1: "latin1", 2: "binary", 3: "latin1", 4: "binary",
    6: "iso8859_5", 7: "iso8859_8", 8: "ucs2",
}


def alphabet_of(dc: int) -> str:
    if dc < 0x10:
        return _SMPP_DATA_CODING.get(dc, "binary")
    group = dc & 0xF0
    if group in (0x10, 0x40, 0x50):  # general (with class) and auto-deletion groups
        if dc & 0x20:  # compressed
            return "binary"
        return ("gsm", "binary", "ucs2", "binary")[(dc >> 2) & 0x03]
    if group == 0xF0:
        return "binary" if dc & 0x04 else "gsm"
    if group in (0xC0, 0xD0):  # message waiting indication, GSM alphabet
        return "gsm"
    if group == 0xE0:  # message waiting indication, UCS-2
        return "ucs2"
    return "binary"
