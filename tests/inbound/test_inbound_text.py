"""Prefix and keyword matching: folding case and diacritics, the first word, and
the pure routing and poll decisions (no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppd.config import InboundNumber
from smppd.inbound import polls as pl
from smppd.inbound.guards import reply_address
from smppd.inbound.routing import Holding, route
from smppd.inbound.text import check_prefix, first_word, fold


@pytest.mark.parametrize(("a", "b"), [
    ("Głosuj", "GLOSUJ"), ("zażółć", "ZAZOLC"), ("Straße", "STRASSE"), ("Ærø", "aero"),
    ("CAFÉ", "cafe"), ("Ñandú", "nandu"), ("Şeker", "seker")])
def test_folding_ignores_case_and_diacritics(a: str, b: str) -> None:
    assert fold(a) == fold(b)


def test_other_scripts_are_not_transliterated() -> None:
    assert fold("ПРИВЕТ") == "привет" != fold("privet")


@pytest.mark.parametrize(("text", "word", "rest"), [
    ("VOTE 5", "VOTE", "5"), ("vote:5", "vote", "5"), ("  Vote - yes please", "Vote",
                                                         "yes please"),
    ("VOTE", "VOTE", ""), ("VOTE😀", "VOTE", "😀"), ("!!! hi", "", "!!! hi"), ("", "", ""),
    ("ZAŻÓŁĆ, gęślą", "ZAŻÓŁĆ", "gęślą")])
def test_first_word_and_the_rest(text: str, word: str, rest: str) -> None:
    split = first_word(text)
    assert (split.word, split.rest) == (word, rest)


@given(st.text(max_size=200))
def test_any_text_splits_without_losing_the_rest(text: str) -> None:
    split = first_word(text)
    assert split.word == "" or text.lstrip().startswith(split.word)
    assert text.endswith(split.rest)
    assert fold(split.word) == split.key


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_ascii_texts_split_by_the_character_rules(text: str) -> None:
    """ASCII texts take a shortcut (one regular expression); it cuts where the rules
    say: the word is the leading letters and digits, and every other ASCII character
    after it is a separator, dropped from the rest."""
    stripped = text.lstrip()
    end = next((i for i, ch in enumerate(stripped) if not ch.isalnum()), len(stripped))
    word, after = stripped[:end], stripped[end:]
    cut = next((i for i, ch in enumerate(after) if ch.isalnum()), len(after))
    split = first_word(text)
    assert (split.word, split.rest) == ((word, after[cut:]) if word else ("", stripped))


@pytest.mark.parametrize(("text", "word", "rest"), [
    ("VOTE_5", "VOTE", "5"), ("vote\t\x1f 3", "vote", "3"), ("a+b", "a", "b"),
    ("_x", "", "_x"), ("\x1c1 x", "1", "x")])
def test_ascii_underscores_and_controls_separate(text: str, word: str, rest: str) -> None:
    split = first_word(text)
    assert (split.word, split.rest) == (word, rest)


@pytest.mark.parametrize("bad", ["a", "x" * 17, "two words", "a-b", "", None, 12, "-ab"])
def test_malformed_prefixes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        check_prefix(bad)


def test_routing_decisions() -> None:
    shared = InboundNumber("48500", "shared")
    dedicated = InboundNumber("48501", "dedicated")
    holdings = [Holding(1, "glos", 0, 100), Holding(2, "zima", 0, None)]
    assert route(shared, "Głos tak", holdings, 50, {}).account_id == 1
    assert route(shared, "GLOS tak", holdings, 100, {}).reason == "lapsed"
    assert route(shared, "lato", holdings, 50, {}).reason == "no_prefix"
    assert route(None, "x", [], 0, {}).reason == "unknown_number"
    assert route(dedicated, "hi", [], 0, {}).reason == "no_holder"
    whole = [Holding(3, "", 0, None)]
    plain = route(dedicated, "vote 5", whole, 1, {})
    assert (plain.account_id, plain.prefix, plain.body) == (3, None, "vote 5")
    split = route(dedicated, "Vote 5", whole, 1, {3: {"vote"}})
    assert (split.prefix, split.prefix_key, split.body) == ("Vote", "vote", "5")


def _poll(**overrides: object) -> pl.Poll:
    values: dict[str, object] = dict(
        id="p", account_id=1, number="48501", prefix_key="", starts_at=100.0, ends_at=200.0,
        created_at=0.0, sender="Acme", replies={"default": "Thanks {keyword}"},
        limit_votes=0, limit_seconds=None, groups=(), discount_pool=None,
        options=(pl.Option(1, "Tak", "tak", None), pl.Option(2, "Bardzo dobrze",
                                                             "bardzo dobrze", "Super")))
    values.update(overrides)
    return pl.Poll(**values)  # type: ignore[arg-type]


def test_window_is_half_open_and_options_match_folded() -> None:
    poll = _poll()
    assert [poll.in_window(t) for t in (99.0, 100.0, 199.999, 200.0)] == [
        False, True, True, False]
    assert pl.option_for(poll, "TAK!").number == 1
    assert pl.option_for(poll, "bardzo   DOBRZE").number == 2
    assert pl.option_for(poll, "nie") is None
    assert pl.reply_for(poll, pl.ACCEPTED, poll.options[0], None, False) == "Thanks Tak"
    assert pl.reply_for(poll, pl.OUT_OF_WINDOW, None, None, False) is None
    assert pl.judge(poll, None, 150, True, 0) == pl.UNKNOWN_OPTION
    assert pl.judge(_poll(limit_votes=1), poll.options[0], 150, True, 1) == pl.OVER_LIMIT
    assert pl.judge(poll, poll.options[0], 150, False, 0) == pl.NOT_ALLOWED


def test_pick_prefers_the_open_poll() -> None:
    old = _poll(id="a", starts_at=0.0, ends_at=50.0)
    current = _poll(id="b")
    assert pl.pick([old, current], 1, "48501", "", 150.0) is current
    assert pl.pick([old, current], 1, "48501", "", 60.0) is current  # later start, not open
    assert pl.pick([old, current], 2, "48501", "", 150.0) is None
    assert pl.pick([old], 1, "48501", "", 50.0 + pl.GRACE_SECONDS) is None


@pytest.mark.parametrize(("sender", "answerable"), [
    ("48600100200", True), ("+48600100200", True), ("4600", False), ("BankAlert", False),
    ("48000", False), ("", False)])
def test_only_real_numbers_are_answered(sender: str, answerable: bool) -> None:
    assert (reply_address(sender) is not None) == answerable
