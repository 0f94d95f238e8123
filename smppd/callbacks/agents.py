"""The class of a browser that followed a short link: mobile, tablet, desktop, bot
(link-preview fetchers and crawlers, which are not people clicking) or other.

Classified by the `user-agents` package (the ua-parser rules), which costs up to a
few milliseconds for a string it has not seen: known strings come from a bounded
cache at once, new ones are classified on a thread of their own so the reactor never
runs the rules, and under a flood of new strings the answer is `other` rather than
a queue that grows.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

CLASSES = ("mobile", "tablet", "desktop", "bot", "other")
MAX_LENGTH = 512  # characters of a User-Agent looked at
CACHE_SIZE = 4096
MAX_WAITING = 200  # new strings being classified at once, beyond which: `other`


def classify(user_agent: str) -> str:
    from user_agents import parse  # its rules cost memory: loaded only if links are used

    agent = parse(user_agent[:MAX_LENGTH])
    if agent.is_bot:
        return "bot"
    if agent.is_tablet:
        return "tablet"
    if agent.is_mobile:
        return "mobile"
    if agent.is_pc:
        return "desktop"
    return "other"


class AgentClasses:
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="smppd-agents")
        self.cache: OrderedDict[str, str] = OrderedDict()
        self.waiting = 0

    def start(self) -> None:
        self.pool.start()

    def stop(self) -> None:
        if self.pool.started:
            self.pool.stop()

    def of(self, user_agent: bytes) -> str | defer.Deferred[str]:
        """The class now when known, else a Deferred (on the reactor thread)."""
        if not user_agent:
            return "other"
        text = user_agent[:MAX_LENGTH].decode("latin-1")
        known = self.cache.get(text)
        if known is not None:
            self.cache.move_to_end(text)
            return known
        if self.waiting >= MAX_WAITING or not self.pool.started:
            return "other"
        self.waiting += 1

        def learnt(kind: str) -> str:
            self.cache[text] = kind
            if len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)
            return kind

        def done(result: Any) -> Any:
            self.waiting -= 1
            return result

        return deferToThreadPool(self.reactor, self.pool, classify, text).addCallbacks(
            learnt, lambda _: "other").addBoth(done)
