"""Checks of the values customers give that every door uses (the API, jobs, inbound
replies, polls): phone numbers and {field} templates. Errors carry what the API
answers, a 4xx status and the field that was wrong (as h11's errors carry theirs),
so a check deep in a job row or a poll reply still becomes a clear answer."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import phonenumbers

from . import e164

_E164 = re.compile(r"^\+[1-9][0-9]{3,14}$")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")


class ApiError(Exception):
    """A 4xx answer: `field` names what was wrong in the request."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            error["field"] = self.field
        return error


def pool_number(value: Any, field: str = "number") -> str:
    """A number of the inbound pool as digits: '+48...' or a short code."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "expected a number such as +48500600700 or a short code", field)
    digits = value.strip().removeprefix("+")
    if not digits.isdigit() or not 3 <= len(digits) <= 15:
        raise ApiError(400, f"expected +E.164 or a short code of 3-15 digits, got {value!r}",
                       field)
    return digits


def inbound_sender(value: Any, field: str = "sender") -> str:
    """An MO sender to filter by: a phone number (with or without '+') or a sender id."""
    source = value.strip().removeprefix("+") if isinstance(value, str) else ""
    if not source or len(source) > 32:
        raise ApiError(400, "expected a phone number or a sender id", field)
    return source


def recipient(value: Any, field: str = "to") -> tuple[str, str | None]:
    """E.164 digits (no '+') and the ISO region of a destination number."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "expected a phone number in E.164 form, such as +48500100200",
                       field)
    text = value.strip()
    if not text.startswith("+"):
        raise ApiError(400, f"expected E.164 with a leading '+' and country code, got {text!r}",
                       field)
    # Issue 14: '+digits' that phonenumbers finds valid as written, answered without
    # its per-call overhead (smppd.e164 says why the answer is the same); anything
    # else, and every error, is phonenumbers' own below.
    known = e164.valid_as_written(text)
    if known is not None:
        return known
    number = _strict_e164(text)
    if number is None:  # spaces, dashes, brackets: let phonenumbers read it
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException as exc:
            raise ApiError(400, f"not a phone number: {exc}", field) from None
    # is_valid_number() is region_code_for_number() then is_valid_number_for_region();
    # done here in its two steps, the region found once serves the answer too (for a
    # country code shared by several regions, +1 or +7, finding it is the dear part).
    region = phonenumbers.region_code_for_number(number)
    if not phonenumbers.is_valid_number_for_region(number, region):
        number = _lenient(text)  # only to suggest what was perhaps meant
        if number is None or not phonenumbers.is_valid_number(number):
            raise ApiError(400, f"{text!r} is not a valid number for its country", field)
        region = phonenumbers.region_code_for_number(number)
    digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    typed = "".join(ch for ch in text if ch in "0123456789")
    if digits != typed:
        # phonenumbers dropped a trunk prefix (+7 8..., +961 0...): sending to another
        # number than the one written would be worse than asking.
        raise ApiError(400, f"{text!r} is not valid as written; did you mean +{digits}?",
                       field)
    return digits, region


def _lenient(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None


def _strict_e164(text: str) -> phonenumbers.PhoneNumber | None:
    """A PhoneNumber for '+' and digits only, without phonenumbers.parse: parse reads
    any national format with a dozen regular expressions (18 µs), while E.164 needs
    only the country code, and country codes are prefix-free. Validity is still
    phonenumbers' own is_valid_number."""
    if not _E164.match(text):
        return None
    digits = text[1:]
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[length:]
            if not national or national[0] == "0":
                # A leading 0 may be a national prefix that parse strips (+961 0...)
                # or an Italian-style significant zero: phonenumbers decides.
                return None
            return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return None


def check_template(template: str) -> None:
    """Every brace is part of a {field} placeholder or a {{ / }} escape."""
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise ApiError(400, "a lone '{' or '}' (write {{ or }} for a brace, {field} for a "
                       "value)", "text")


def render(template: str, fields: dict[str, Any]) -> str:
    """Fill {field} placeholders; {{ and }} are literal braces. Deliberately not
    str.format: a template must not reach attributes ({to.__class__}) or indexes."""
    if "{" not in template and "}" not in template:
        return template  # most jobs: one text for every row, nothing to fill
    out = []
    for literal, name in _pieces(template):
        out.append(literal)
        if name is None:
            continue
        if name not in fields:
            raise ApiError(400, f"no value for the placeholder {{{name}}}", name)
        value = fields[name]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ApiError(400, f"expected text or a number for {{{name}}}", name)
        out.append(str(value))
    return "".join(out)


@lru_cache(maxsize=1024)
def _pieces(template: str) -> tuple[tuple[str, str | None], ...]:
    """A template cut once into (text, placeholder or None) pieces, the escapes
    already read: a job's rows and a poll's replies render one template thousands of
    times, and a regex substitution calling back into Python for each placeholder
    was the larger part of each render."""
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        literal = template[position:match.start()]
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append((literal + token[0], None))
        else:
            pieces.append((literal, match.group(1)))
        position = match.end()
    pieces.append((template[position:], None))
    return tuple(pieces)
