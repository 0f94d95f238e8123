"""Short links: every http(s) URL of a text replaced by `<links.base_url><code>`, a
code per URL and recipient message, made before the text is priced (so the parts
and points the API answers are those of the text that is sent).

URLs are found by hand: only ones written with their scheme count (`https://...`),
which is one expression; the URL-finding libraries also guess at bare domains
(`example.com`), need a list of top-level domains fetched from the internet, and
would shorten things a customer never meant as links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..store.links import CODE, CODE_BITS, CODE_LENGTH, new_code

__all__ = ["CODE", "CODE_BITS", "CODE_LENGTH", "Shortener", "find_urls", "new_code"]

# A URL runs to the next space, quote or angle bracket; trailing punctuation that
# ends the sentence is not part of it (see _trim).
_URL = re.compile(r"https?://[^\s<>\"'{}|\\^`]+", re.IGNORECASE)
_TRAILING = ".,;:!?*"
_PAIRS = {")": "(", "]": "["}


def _trim(url: str) -> str:
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last in _PAIRS and url.count(last) > url.count(_PAIRS[last]):
            url = url[:-1]  # "(see https://x.example/a)": the ')' is the sentence's
        else:
            return url
    return url


def find_urls(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of each http(s) URL with a host, in order."""
    found = []
    for match in _URL.finditer(text):
        url = _trim(match.group(0))
        host = url.split("://", 1)[1].split("/", 1)[0]
        if host.strip(".:@"):
            found.append((match.start(), match.start() + len(url), url))
    return found


@dataclass(frozen=True, slots=True)
class Shortener:
    """`base_url` from the configuration (`links.base_url`), e.g. https://s.example/."""

    base_url: str

    def shorten(self, text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The text with each URL replaced, and (code, original URL) per replacement.
        A URL that is already one of ours is left as it is."""
        pieces, links, position = [], [], 0
        for start, end, url in find_urls(text):
            if url.startswith(self.base_url):
                continue
            code = new_code()
            pieces.append(text[position:start])
            pieces.append(self.base_url + code)
            links.append((code, url))
            position = end
        if not links:
            return text, ()
        pieces.append(text[position:])
        return "".join(pieces), tuple(links)
