"""Routes: which SMSCs may carry a number, in order of preference, and how its text
is cut (the first SMSC's settings: every part of a message is cut alike).

A Router is immutable: a reload builds a new one on the reactor thread and swaps it
in with one assignment, so a job being priced on a pool thread keeps the snapshot it
started with instead of reading maps that change under it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..config import SmscSettings
from ..protocol.segmentation import SplitPolicy
from ..protocol.text import CharsetProfile

ANY_SMSC = "*"  # no routes configured: any SMSC takes any number
NO_ROUTE = ""  # routes are configured and none matches


@dataclass(frozen=True, slots=True)
class TextSettings:
    profile: CharsetProfile
    policy: SplitPolicy

    @classmethod
    def of(cls, smsc: SmscSettings) -> TextSettings:
        return cls(CharsetProfile(smsc.dcs0_charset, smsc.latin1),
                   SplitPolicy(smsc.split, smsc.max_parts))


class Router:
    def __init__(self, routes: Mapping[str, Sequence[str] | str],
                 texts: Mapping[str, TextSettings], default_text: TextSettings) -> None:
        """`routes`: destination prefix (digits) -> SMSC names in order of preference;
        the longest prefix wins. `texts`: each SMSC's text settings."""
        members = {prefix: (smscs,) if isinstance(smscs, str) else tuple(smscs)
                   for prefix, smscs in routes.items()}
        self._by_prefix = {prefix: "|".join(smscs) for prefix, smscs in members.items()}
        self._members = {"|".join(smscs): smscs for smscs in members.values()}
        self._lengths = sorted({len(prefix) for prefix in members}, reverse=True)
        self._texts = dict(texts)
        self.default_text = default_text

    @classmethod
    def of(cls, routes: Mapping[str, Sequence[str]], smscs: Sequence[SmscSettings]) -> Router:
        texts = {smsc.name: TextSettings.of(smsc) for smsc in smscs}
        return cls(routes, texts, TextSettings.of(smscs[0]))

    def route_for(self, recipient: str) -> str:
        """The route key of a number ("a" or "a|b"), ANY_SMSC, or NO_ROUTE."""
        for length in self._lengths:
            target = self._by_prefix.get(recipient[:length])
            if target is not None:
                return target
        return NO_ROUTE if self._by_prefix else ANY_SMSC

    def resolve(self, smsc: str | None, recipient: str) -> str:
        """The route of a stored message: the one chosen at accept time while the
        configuration still knows it, else the current route for its number (and
        with no route, any SMSC: it was accepted, so it is sent)."""
        route = smsc or self.route_for(recipient)
        if self.knows(route):
            return route
        current = self.route_for(recipient)
        return ANY_SMSC if current == NO_ROUTE else current

    def knows(self, route: str) -> bool:
        """Whether a route key still means something in this configuration."""
        return route == ANY_SMSC or route in self._members or route in self._texts

    def members(self, route: str) -> tuple[str, ...]:
        return self._members.get(route, (route,))

    def text_for(self, route: str) -> TextSettings:
        members = self._members.get(route)
        text = self._texts.get(members[0] if members else route)
        return text if text is not None else self.default_text

    def serves(self, smsc: str, is_bound: Callable[[str], bool]) -> Callable[[str], bool]:
        """Whether `smsc` takes a route's messages now: any SMSC for ANY_SMSC, else the
        first SMSC of the route that is bound (failover in order)."""

        def check(route: str) -> bool:
            if route == ANY_SMSC:
                return True
            for name in self.members(route):
                if name == smsc:
                    return True
                if is_bound(name):
                    return False  # a preferred SMSC is up and takes it
            return False

        return check
