"""smppd.e164 gives phonenumbers' answer whenever it answers: the same validity and
region for every region's example numbers, for numbers near them and for random
numbers of every country code, and it declines nothing valid."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from smppd import checks, e164

_TYPES = [value for name, value in vars(PhoneNumberType).items()
          if name.isupper() and isinstance(value, int)]


def _reference(text: str) -> tuple[str, str] | None:
    """What phonenumbers itself says of a '+digits' text: (digits, region) when it is
    valid as written, else None."""
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(number)
    if not phonenumbers.is_valid_number_for_region(number, region):
        return None
    digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return (digits, region) if digits == text[1:] else None


def _samples() -> list[str]:
    rng = random.Random(14)
    found: list[str] = []
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            for kind in _TYPES:
                example = (phonenumbers.example_number_for_non_geo_entity(code)
                           if region == "001" else
                           phonenumbers.example_number_for_type(region, kind))
                if example is None:
                    continue
                text = phonenumbers.format_number(example,
                                                  phonenumbers.PhoneNumberFormat.E164)
                found.append(text)
                for _ in range(15):  # the same prefix, other endings and lengths
                    keep = rng.randrange(len(str(code)) + 2, len(text))
                    tail = "".join(rng.choice("0123456789")
                                   for _ in range(len(text) - keep + rng.randrange(-2, 3)))
                    found.append(text[:keep] + tail)
        for _ in range(60):
            size = rng.randrange(4, 16 - len(str(code)) + 1)
            found.append(f"+{code}" + "".join(rng.choice("0123456789") for _ in range(size)))
    return found


SAMPLES = _samples()


def test_the_same_answer_as_phonenumbers() -> None:
    answered = valid = 0
    for text in SAMPLES:
        expected = _reference(text)
        got = e164.valid_as_written(text)
        valid += expected is not None
        if got is not None:
            answered += 1
            assert got == expected, text
        elif expected is not None:
            # Declined though valid: only a national part with a leading 0, or more
            # than 15 digits (phonenumbers reads those itself), may be.
            digits = text[1:]
            if len(digits) > 15:
                continue
            national = next(digits[n:] for n in (1, 2, 3)
                            if int(digits[:n]) in COUNTRY_CODE_TO_REGION_CODE)
            assert national.startswith("0"), text
    assert valid > 2000 and answered > 0.9 * valid  # the samples test something


@pytest.mark.parametrize("text", ["+48500100200", "+12015550123", "+447400123456",
                                  "+79123456789", "+77012345678", "+390669812345",
                                  "+8008001234", "+4850010020", "+1201555012"])
def test_recipient_unchanged(text: str) -> None:
    """checks.recipient answers as before: the fast answer or phonenumbers' error."""
    expected = _reference(text)
    if expected is None:
        with pytest.raises(checks.ApiError):
            checks.recipient(text)
    else:
        assert checks.recipient(text) == expected


def test_not_plus_digits_is_not_answered() -> None:
    for text in ["48500100200", "+48 500 100 200", "+0123456", "+48", " +48500100200",
                 "+4850010020012345678", "+485001002००"]:
        assert e164.valid_as_written(text) is None
