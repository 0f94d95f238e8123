"""The links listener's parts that make it fast, on a task.Clock: codes answered from
a bounded cache, misses looked up a batch at a time, codes naming no link remembered
briefly, a flood of lookups refused; clicks handed to the writer in batches after
their 302, dropped and counted (never queued without bound) when the writer is
behind or refuses them; the target URI's fast path equal to hyperlink's answer."""

from __future__ import annotations

import string
from typing import Any

import hyperlink
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, task

from smppd.callbacks import clicks as clicks_module
from smppd.callbacks import targets as targets_module
from smppd.callbacks.clicks import ClickQueue
from smppd.callbacks.delivery import target_uri
from smppd.callbacks.targets import Busy, LinkTargets
from smppd.store.callback_operations import ClicksSeen


class Links:
    """The read pool answering `queries.link_urls`, each read held until released."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.reads: list[tuple[list[str], defer.Deferred[Any]]] = []

    def read(self, fn: Any, codes: list[str]) -> defer.Deferred[Any]:
        assert fn.__name__ == "link_urls"
        d: defer.Deferred[Any] = defer.Deferred()
        self.reads.append((list(codes), d))
        return d

    def answer(self) -> list[str]:
        codes, d = self.reads.pop(0)
        d.callback({code: self.urls[code] for code in codes if code in self.urls})
        return codes


def targets(urls: dict[str, str], size: int = 100) -> tuple[task.Clock, Links,
                                                            LinkTargets[str]]:
    clock, links = task.Clock(), Links(urls)
    return clock, links, LinkTargets(clock, links.read, lambda url: "302 " + url, size)


def results(d: Any) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_misses_are_looked_up_together_and_then_answered_from_memory() -> None:
    urls = {f"code{i:05d}": f"https://x.example/{i}" for i in range(50)}
    _, links, cache = targets(urls)
    first = results(cache.find("code00000"))
    # While that read runs, 49 more codes (one asked twice) wait for one more read.
    waiting = [results(cache.find(f"code{i:05d}")) for i in range(1, 50)]
    again = results(cache.find("code00001"))
    assert [codes for codes, _ in links.reads] == [["code00000"]]
    links.answer()
    assert first == ["302 https://x.example/0"]
    assert len(links.reads) == 1 and len(links.reads[0][0]) == 49
    links.answer()
    assert [w[0] for w in waiting] == [f"302 https://x.example/{i}" for i in range(1, 50)]
    assert again == ["302 https://x.example/1"]
    # Known now: answered at once, no Deferred, no read.
    assert cache.find("code00007") == "302 https://x.example/7"
    assert not links.reads and cache.lookups == 2


def test_unknown_codes_are_remembered_briefly() -> None:
    clock, links, cache = targets({})
    got = results(cache.find("ZZZZZZZZZ"))
    links.answer()
    assert got == [None]
    assert cache.find("ZZZZZZZZZ") is None and not links.reads
    clock.advance(targets_module.UNKNOWN_TTL + 1)
    results(cache.find("ZZZZZZZZZ"))
    assert len(links.reads) == 1  # looked up again: the link may exist by now


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    urls = {c: "https://x.example/" + c for c in "abcd"}
    _, links, cache = targets(urls, size=3)
    for code in "abc":
        results(cache.find(code))
        links.answer()
    assert cache.find("a") == "302 https://x.example/a"  # a is now the most recent
    results(cache.find("d"))
    links.answer()
    assert list(cache.known) == ["c", "a", "d"]  # b, least recently used, went
    assert isinstance(cache.find("b"), defer.Deferred)


def test_a_flood_of_misses_is_refused_not_queued(monkeypatch: Any) -> None:
    monkeypatch.setattr(targets_module, "MAX_WAITING", 3)
    _, links, cache = targets({})
    for code in ("a", "b", "c"):
        results(cache.find(code))
    refused = results(cache.find("d"))
    assert refused[0].check(Busy)
    assert len(links.reads) == 1


def test_a_failed_lookup_fails_its_waiters_and_the_next_batch_still_runs() -> None:
    _, links, cache = targets({"b": "https://x.example/b"})
    first = results(cache.find("a"))
    second = results(cache.find("b"))
    links.reads.pop(0)[1].errback(RuntimeError("database down"))
    assert first[0].check(RuntimeError)
    links.answer()
    assert second == ["302 https://x.example/b"]


class Unrecorded:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, amount: int = 1) -> None:
        self.count += amount


class Writer:
    def __init__(self) -> None:
        self.puts: list[tuple[Any, defer.Deferred[Any]]] = []

    def put(self, op: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.puts.append((op, d))
        return d


def test_clicks_go_to_the_writer_in_one_operation_per_interval() -> None:
    clock, writer, dropped = task.Clock(), Writer(), Unrecorded()
    queue = ClickQueue(clock, writer.put, dropped)
    for n in range(5):
        assert queue.add(f"code{n}", 1.0, "mobile")
    assert not writer.puts
    clock.advance(clicks_module.FLUSH_DELAY)
    [(op, d)] = writer.puts
    assert isinstance(op, ClicksSeen) and [c[0] for c in op.clicks] == [
        f"code{n}" for n in range(5)]
    assert queue.writing == 5
    d.callback(5)
    assert queue.writing == 0 and dropped.count == 0


def test_clicks_beyond_the_limit_and_refused_batches_are_counted_not_kept() -> None:
    clock, writer, dropped = task.Clock(), Writer(), Unrecorded()
    queue = ClickQueue(clock, writer.put, dropped, limit=3)
    assert all(queue.add(c, 1.0, "mobile") for c in "abc")
    assert not queue.add("d", 1.0, "mobile")  # full: the 302 still went out
    clock.advance(clicks_module.FLUSH_DELAY)
    assert not queue.add("e", 1.0, "mobile")  # handed over, not yet written: still full
    writer.puts[0][1].errback(RuntimeError("stalled"))
    assert dropped.count == 2 + 3
    assert queue.add("f", 1.0, "mobile")


def test_stop_hands_over_what_is_queued_and_waits_for_it() -> None:
    clock, writer, dropped = task.Clock(), Writer(), Unrecorded()
    queue = ClickQueue(clock, writer.put, dropped)
    queue.add("a", 1.0, "mobile")
    stopped = results(queue.stop())
    assert len(writer.puts) == 1 and not stopped
    writer.puts[0][1].callback(1)
    assert len(stopped) == 1
    assert not clock.getDelayedCalls()


_HOST = st.lists(st.text(string.ascii_letters + string.digits + "-", min_size=1,
                         max_size=12), min_size=1, max_size=4).map(".".join)
_PART = st.text(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?#%[] é",
                max_size=30)


@given(scheme=st.sampled_from(["http", "https", "HTTPS"]), host=_HOST, rest=_PART)
def test_the_target_uri_fast_path_agrees_with_hyperlink(scheme: str, host: str,
                                                         rest: str) -> None:
    url = f"{scheme}://{host}{'/' if rest and rest[0] not in '/?#' else ''}{rest}"
    try:
        expected = hyperlink.URL.from_text(url).to_uri().to_text().encode("ascii")
    except Exception:
        expected = None
    try:
        got = target_uri.__wrapped__(url)
    except Exception:
        got = None
    if expected is not None or got is not None:
        assert got == expected, url
