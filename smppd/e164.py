"""phonenumbers' validity of a '+digits' number, without phonenumbers' per-call
overhead (issue 14: a bulk job checks a million numbers, and each check walked the
metadata in Python: 10-12 µs of a CSV row's CPU).

`valid_as_written(text)` answers for the common case only, and says None whenever
phonenumbers must decide (then checks.recipient asks it, and writes the error).
When it does answer, the answer is the one phonenumbers gives, by construction:

- The country code is read as `checks._strict_e164` reads it (country codes are
  prefix-free), the national part has no leading 0, so phonenumbers' national
  significant number is that text as it stands, and its E.164 formatting gives the
  digits back as written.
- The region is `region_code_for_number`'s: the country code's only region, or,
  for a shared code (+1, +7, +44...), the first region in phonenumbers' order whose
  `leading_digits` prefix-matches, or (without leading_digits) for which the number
  is valid.
- Validity is `_number_type_helper(nsn, metadata) != UNKNOWN`: the general
  description matches (length among its possible lengths, pattern matching the
  whole number), and so does at least one of the type descriptions that helper
  tries, in its order (mobile only when its pattern differs from fixed line's).
  "At least one of them fullmatches" is the fullmatch of their alternation: the
  patterns are plain (no anchors, back-references, look-arounds or inline flags,
  checked when built; otherwise this module declines and phonenumbers decides),
  and a regular-expression alternation is tried branch by branch until the whole
  string matches. The descriptions whose possible lengths exclude the number's
  length are left out of the alternation, as the helper skips them. The general
  description goes in front as a look-ahead ending at the end of the text, so one
  fullmatch asks both that it matches the whole number and that a type does.

Built lazily per country code from phonenumbers' own metadata, so it follows the
installed phonenumbers version. tests/test_e164.py compares it with phonenumbers on
every region's example numbers and on random numbers of every country code.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
)

_E164 = re.compile(r"\+[1-9][0-9]{3,14}")  # as checks._E164 (the text is stripped)
# What _number_type_helper tries after the general description, in its order.
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
          "uan", "voicemail", "fixed_line")
# A pattern using any of these is not "plain": this module declines it.
_NOT_PLAIN = re.compile(r"\\[1-9]|\(\?[^:]|\^|\$|\\[AbBZz]")


class _Decline(Exception):
    """Metadata this module does not mirror: phonenumbers decides."""


class _Region:
    """One region's validity test, per national number length."""

    def __init__(self, region: str, metadata: Any) -> None:
        self.region = region
        general = metadata.general_desc
        if general is None or not general.national_number_pattern:
            raise _Decline(region)
        self._general = _plain(general.national_number_pattern)
        self._general_lengths = frozenset(general.possible_length)
        descs = [getattr(metadata, name) for name in _TYPES]
        if not metadata.same_mobile_and_fixed_line_pattern:
            descs.append(metadata.mobile)
        self._descs = [(frozenset(desc.possible_length), _plain(desc.national_number_pattern))
                       for desc in descs
                       if desc is not None and desc.national_number_pattern]
        self._by_length: dict[int, re.Pattern[str] | None] = {}
        leading = metadata.leading_digits
        self.leading = re.compile(leading) if leading is not None else None

    def _for(self, length: int) -> re.Pattern[str] | None:
        """One pattern for numbers of `length`: the general description as a
        look-ahead to the end, then the alternation of the type descriptions that
        take that length; None when no number of that length can be valid."""
        if self._general_lengths and length not in self._general_lengths:
            return None
        patterns = [pattern.pattern for lengths, pattern in self._descs
                    if not lengths or length in lengths]
        if not patterns:
            return None
        return re.compile(f"(?=(?:{self._general.pattern})\\Z)(?:"
                          + "|".join(f"(?:{p})" for p in patterns) + ")")

    def valid(self, nsn: str) -> bool:
        length = len(nsn)
        pattern = self._by_length.get(length, _MISSING)
        if pattern is _MISSING:
            pattern = self._by_length[length] = self._for(length)
        return pattern is not None and pattern.fullmatch(nsn) is not None


_MISSING = object()


def _plain(pattern: str) -> re.Pattern[str]:
    if _NOT_PLAIN.search(pattern):
        raise _Decline(pattern)
    return re.compile(pattern)


class _Country:
    def __init__(self, code: int, regions: tuple[str, ...]) -> None:
        self.single = len(regions) == 1
        self.regions: list[_Region] = []
        for region in regions:
            if self.single:
                metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            else:  # as _region_code_for_number_from_list reads them
                metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
            if metadata is None:
                if self.single:
                    raise _Decline(region)
                continue
            if region != REGION_CODE_FOR_NON_GEO_ENTITY and metadata.country_code != code:
                raise _Decline(region)  # is_valid_number_for_region would refuse it
            self.regions.append(_Region(region, metadata))

    def region_if_valid(self, nsn: str) -> str | None:
        if self.single:
            only = self.regions[0]
            return only.region if only.valid(nsn) else None
        for region in self.regions:
            if region.leading is not None:
                if region.leading.match(nsn):
                    return region.region if region.valid(nsn) else None
            elif region.valid(nsn):
                return region.region
        return None


_countries: dict[int, _Country | None] = {}
_building = threading.Lock()


def _country(code: int) -> _Country | None:
    country = _countries.get(code, _MISSING)
    if country is _MISSING:
        with _building:
            try:
                country = _Country(code, COUNTRY_CODE_TO_REGION_CODE[code])
            except _Decline:
                country = None
            _countries[code] = country
    return country  # type: ignore[return-value]


# Country codes as their digits: the first digit is never 0, so the text of a code
# is its only spelling, and a lookup replaces checks._strict_e164's int() per length.
_CODES = {str(code): code for code in COUNTRY_CODE_TO_REGION_CODE}


def valid_as_written(text: str) -> tuple[str, str] | None:
    """(digits without '+', ISO region) of a stripped '+digits' text phonenumbers
    finds valid as written; None when this module cannot say (not '+digits', a
    national part starting with 0, an unknown country code) or the number is not
    valid: phonenumbers then decides, and names the problem."""
    if _E164.fullmatch(text) is None:
        return None
    digits = text[1:]
    for length in (1, 2, 3):
        code = _CODES.get(digits[:length])
        if code is not None:
            national = digits[length:]
            if not national or national[0] == "0":
                return None
            country = _countries.get(code, _MISSING)
            if country is _MISSING:
                country = _country(code)
            if country is None:
                return None
            region = country.region_if_valid(national)  # type: ignore[union-attr]
            return None if region is None else (digits, region)
    return None
