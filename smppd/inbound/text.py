"""How MO text is compared: prefixes and poll keywords match whatever case and
diacritics a handset sent ("Głosuj", "GLOSUJ", "głosuj" are one word), and the
stored message keeps its first word and the rest apart.

Folding is NFKD with the combining marks dropped, then case-folded. Latin letters
that carry their mark inside the letter (ł, ø, đ, ß, æ) do not decompose, so those
go through anyascii; other scripts are kept as they are (a Cyrillic prefix must not
match a Latin transliteration of itself).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from anyascii import anyascii

PREFIX_MIN, PREFIX_MAX = 2, 16


@lru_cache(maxsize=65536)
def _fold_char(ch: str) -> str:
    if ch.isascii():
        return ch.casefold()
    stripped = "".join(c for c in unicodedata.normalize("NFKD", ch)
                       if not unicodedata.combining(c))
    if stripped and not stripped.isascii() and unicodedata.name(ch, "").startswith("LATIN"):
        stripped = anyascii(stripped)
    return stripped.casefold()


def fold(text: str) -> str:
    """The key a word is compared by."""
    if text.isascii():
        return text.casefold()
    return "".join(_fold_char(ch) for ch in unicodedata.normalize("NFC", text))


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.combining(ch) != 0


@dataclass(frozen=True, slots=True)
class Split:
    """A text cut after its first word: `word` as sent, `rest` without the spaces or
    separators that followed it (a space, a separator or nothing ends a prefix)."""

    word: str
    rest: str

    @property
    def key(self) -> str:
        return fold(self.word)


# An ASCII text, the usual vote ("VOTE 1"), cut by one regular expression: in ASCII a
# word character is a letter or digit, and every other character separates (see
# _is_separator), so this is the loop below without a Python step per character.
_ASCII_SPLIT = re.compile(r"([A-Za-z0-9]*)[^A-Za-z0-9]*")


def first_word(text: str | None) -> Split:
    text = (text or "").lstrip()
    if text.isascii():
        match = _ASCII_SPLIT.match(text)
        assert match is not None  # both parts may be empty: it always matches
        word = match.group(1)
        return Split(word, text[match.end():]) if word else Split("", text)
    end = 0
    while end < len(text) and _is_word_char(text[end]):
        end += 1
    if not end:
        return Split("", text)
    rest = text[end:]
    # The spaces and separators after the word belong to neither part: "VOTE: 5",
    # "VOTE-5", "VOTE 5" all leave "5"; an emoji or any other symbol stays in the rest.
    cut = 0
    while cut < len(rest) and _is_separator(rest[cut]):
        cut += 1
    return Split(text[:end], rest[cut:])


def _is_separator(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] == "P" or (
        ch.isascii() and not ch.isalnum())


def check_prefix(value: object) -> str:
    """A reservable prefix: 2-16 letters or digits. Raises ValueError saying why."""
    if not isinstance(value, str):
        raise ValueError("expected 2-16 letters or digits")
    value = unicodedata.normalize("NFC", value.strip())
    if not PREFIX_MIN <= len(value) <= PREFIX_MAX:
        raise ValueError(f"expected {PREFIX_MIN}-{PREFIX_MAX} letters or digits, got "
                         f"{len(value)} characters")
    if not all(_is_word_char(ch) for ch in value) or not value[0].isalnum():
        raise ValueError("only letters and digits (no spaces or separators)")
    return value
