"""GSM 03.38 default alphabet and its extension table, septet packing.

Written here because the candidates get it wrong in ways that reach handsets:
smpplib's table has a backtick at 0x5F where GSM 03.38 has '§' (so '§' forces UCS-2
and a backtick arrives as '§') and its extension table lacks form feed; Python's
codecs have no GSM 03.38 at all.
"""

from __future__ import annotations

import codecs
import re

ESC = 0x1B

BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC) == 128

EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

# char -> its septets (one for the basic table, ESC + code for the extension table)
ENCODE: dict[str, bytes] = {ch: bytes([code]) for code, ch in enumerate(BASIC) if code != ESC}
ENCODE.update({ch: bytes([ESC, code]) for code, ch in EXTENSION.items()})

# char -> septet cost, the unit of GSM part sizes.
COST: dict[str, int] = {ch: len(septets) for ch, septets in ENCODE.items()}


# Character-class scans run in C: a per-character generator was a tenth of the cost
# of queueing a job row.
_NOT_GSM = re.compile("[^" + "".join(re.escape(ch) for ch in COST) + "]")
_EXTENDED = re.compile("[" + "".join(re.escape(ch) for ch, n in COST.items() if n == 2) + "]")


def is_gsm(text: str) -> bool:
    """True when every character has a GSM 03.38 septet (basic or extension)."""
    return _NOT_GSM.search(text) is None


def septet_count(text: str) -> int:
    """Septets the text takes; raises KeyError for a character outside GSM 03.38."""
    outside = _NOT_GSM.search(text)
    if outside is not None:
        raise KeyError(outside.group())
    return len(text) + len(_EXTENDED.findall(text))


def encode(text: str) -> bytes:
    """Unpacked septets, one per octet, as SMPP carries data_coding 0 by default.

    Raises ValueError naming the first character GSM 03.38 cannot carry.
    """
    table = ENCODE
    try:
        return b"".join([table[ch] for ch in text])
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the GSM 03.38 alphabet") from None


# Octet -> its basic character (the high bit ignored, as decode does), for
# codecs.charmap_decode: one C call for a text without escapes, the usual case.
_BASIC_MAP = "".join(BASIC[octet & 0x7F] for octet in range(256))


def decode(septets: bytes) -> str:
    """Unpacked septets to text. An unknown extension code reads as its basic character
    (3GPP TS 23.038 6.2.1.1); a trailing lone ESC is dropped."""
    if ESC not in septets and ESC | 0x80 not in septets:
        return codecs.charmap_decode(septets, "strict", _BASIC_MAP)[0]
    out: list[str] = []
    basic = BASIC
    escaped = False
    for octet in septets:
        code = octet & 0x7F
        if escaped:
            out.append(EXTENSION.get(code, basic[code] if code != ESC else " "))
            escaped = False
        elif code == ESC:
            escaped = True
        else:
            out.append(basic[code])
    return "".join(out)


def pack(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets into octets, LSB first, after `fill_bits` zero bits (used to align
    the text on a septet boundary after a UDH)."""
    value = 0
    bits = fill_bits
    out = bytearray()
    for septet in septets:
        value |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(value & 0xFF)
            value >>= 8
            bits -= 8
    if bits:
        out.append(value & 0xFF)
    return bytes(out)


def unpack(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """Inverse of pack. Without `count`, when the octets hold exactly one septet more
    than the sender could have meant and it is 0x00 or CR, it is taken as padding
    (3GPP TS 23.038 6.1.2.3.1 pads with CR so a final '@' is not invented)."""
    total_bits = len(data) * 8 - fill_bits
    guessed = count is None
    if count is None:
        count = max(total_bits, 0) // 7
    value = int.from_bytes(data, "little") >> fill_bits
    septets = bytes((value >> (7 * i)) & 0x7F for i in range(count))
    if guessed and count and total_bits % 7 == 0 and septets[-1] in (0x00, 0x0D):
        septets = septets[:-1]
    return septets
