"""Languages: Babel catalogs (gettext .po) shipped in the package, compiled in memory
when first used, so a wheel or a clean clone needs no build step and the .po files
stay the one source. English is the source language; Polish is the first catalog.
Dates and numbers are written the locale's way by Babel."""

from __future__ import annotations

import gettext
import io
from datetime import UTC, datetime, tzinfo
from functools import cache
from importlib import resources

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALES = ("en", "pl")
NAMES = {"en": "English", "pl": "Polski"}
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks a string for the catalog where it is defined; it is translated where it
    is shown."""
    return message


def pick(wanted: str | None, fallback: str = "en") -> str:
    return wanted if wanted in LOCALES else fallback


def from_header(accept_language: str, fallback: str = "en") -> str:
    """The first supported language of an Accept-Language header (before sign-in)."""
    for item in accept_language.split(","):
        code = item.split(";")[0].strip().lower()[:2]
        if code in LOCALES:
            return code
    return fallback


@cache
def translations(locale: str) -> gettext.NullTranslations:
    if locale == "en":
        return gettext.NullTranslations()
    source = resources.files("smppd.portal").joinpath("locales", locale, "LC_MESSAGES",
                                                       f"{DOMAIN}.po")
    with source.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


@cache
def _locale(locale: str) -> Locale:
    return Locale.parse(locale)


def when(value: str | datetime | None, locale: str, style: str = "short",
         zone: tzinfo | None = None) -> str:
    """An ISO time (as the API writes it) or a datetime (naive: UTC), the locale's way,
    in `zone` (the account's; UTC without one)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value, style, tzinfo=zone or UTC, locale=_locale(locale))


def number(value: float | int | None, locale: str) -> str:
    return "" if value is None else format_decimal(value, locale=_locale(locale))
