"""Inbound routing, reservations and polls in the store, on SQLite and PostgreSQL:
the decisions the writer makes in the transaction that stores an MO."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from smppd.config import InboundNumber
from smppd.daemon.intake import Intake, Tariff
from smppd.daemon.router import Router
from smppd.inbound.pool import Pool
from smppd.inbound.text import fold
from smppd.protocol.segmentation import ConcatReferences
from smppd.store import inbound_queries as iq
from smppd.store import operations as ops
from smppd.store.inbound_ops import (
    AddCodes,
    ChargeMonthly,
    Conflict,
    CreatePoll,
    InboundStored,
    NotHeld,
    Release,
    Reserve,
    SaveContacts,
    SaveSettings,
)
from smppd.store.inbound_ops import (
    Contact as ContactRow,
)
from tests.store.conftest import Store

DEDICATED, SHARED, SHORT = "48500600700", "48500600701", "4600"
T0 = 1_900_000_000.0  # a fixed moment: every time below is relative to it


def _pool(store: Store, replies_per_hour: int = 5) -> None:
    numbers = (InboundNumber(DEDICATED, "dedicated", None, 100, 50),
               InboundNumber(SHARED, "shared", None, 10, 0),
               InboundNumber(SHORT, "shortcode", "acme"))
    runtime = store.applier.memory.inbound
    runtime.pool = Pool.of(numbers, store.accounts, replies_per_hour)
    from smppd.config import parse

    settings = parse({"database": "sqlite:///x.db", "http": {"listen": "127.0.0.1:0"},
                      "smscs": [{"name": "smsc", "host": "h", "port": 1, "system_id": "s",
                                 "password": "p"}],
                      "accounts": [{"name": "acme", "token": "t" * 16}]}, "test")
    runtime.intake = Intake(Router.of({}, settings.smscs), Tariff(1))
    runtime.references = ConcatReferences(bits=16)


def _mo(text: str, to: str, at: float, source: str = "48600100200",
        key: str | None = None) -> ops.InboundComplete:
    fragment = ops.FragmentSeen("smsc", source, to, 0, None, None, None, text.encode(), None,
                                key or f"{source}|{to}|{text}|{at}")
    return ops.InboundComplete("smsc", source, to, 0, text, text.encode(), 1, None, (),
                               fragment, (fragment.dedupe_key,), at)


def _reserve(store: Store, account: str, number: str, prefix: str | None = None,
             starts: float = T0 - 86400, ends: float | None = None) -> Any:
    return store.apply(Reserve(store.accounts[account], number, prefix,
                               fold(prefix) if prefix else "", starts, ends))[0]


def _poll(store: Store, **overrides: Any) -> str:
    values: dict[str, Any] = dict(
        poll_id="0" * 31 + "1", account_id=store.accounts["acme"], name="Ice cream",
        number=DEDICATED, prefix="VOTE", prefix_key="vote", starts_at=T0, ends_at=T0 + 3600,
        sender="Acme", replies=json.dumps({"default": "Thanks", "out_of_window": "Closed",
                                           "over_limit": "Enough", "no_codes": "No codes"}),
        limit_votes=2, limit_seconds=86400, groups=None, discount_pool=None,
        options=(("1", "1", "Sorry to hear that"), ("5", "5", "Great! {code}")),
        created_at=T0 - 7200)
    values.update(overrides)
    result = store.apply(CreatePoll(**values))[0]
    assert result == values["poll_id"], result
    return result


def _rows(store: Store, sql: str) -> list[Any]:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(sql).all()


def _inbound(store: Store, account: str | None) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        account_id = None if account is None else store.accounts[account]
        return iq.list_inbound(conn, account_id, iq.InboundFilter(), None, 100)[0]


def test_shared_number_routes_by_prefix_whatever_case_and_accents(store: Store) -> None:
    _pool(store)
    assert _reserve(store, "acme", SHARED, "Głos")["id"]
    assert isinstance(_reserve(store, "other", SHARED, "GLOS"), Conflict)  # same prefix, folded
    clash = _reserve(store, "other", SHARED, "glos")
    assert "'Głos'" in str(clash) and clash.field == "prefix"
    assert _reserve(store, "other", SHARED, "ZIMA")["id"]
    results = store.apply(_mo("GŁOS tak", SHARED, T0), _mo("glos: nie", SHARED, T0 + 1),
                          _mo("Zima 3", SHARED, T0 + 2), _mo("lato 1", SHARED, T0 + 3))
    assert [r.account_id for r in results] == [store.accounts["acme"]] * 2 + [
        store.accounts["other"], None]
    assert [(m["prefix"], m["body"]) for m in _inbound(store, "acme")] == [
        ("glos", "nie"), ("GŁOS", "tak")]
    assert [m["text"] for m in _inbound(store, "other")] == ["Zima 3"]
    unassigned = _inbound(store, None)
    assert [(m["text"], m["reason"]) for m in unassigned] == [("lato 1", "no_prefix")]
    assert store.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'inbound_number'") == 2


def test_lapsed_and_released_reservations_stop_routing(store: Store) -> None:
    _pool(store)
    _reserve(store, "acme", DEDICATED, starts=T0 - 10, ends=T0 + 10)
    results = store.apply(_mo("hello", DEDICATED, T0), _mo("late", DEDICATED, T0 + 10))
    assert (results[0].account_id, results[1].account_id) == (store.accounts["acme"], None)
    assert results[1].reason == "lapsed"
    # A dedicated number is one holder's at a time; after the period it is free again.
    assert isinstance(_reserve(store, "bulk", DEDICATED, starts=T0, ends=T0 + 5), Conflict)
    assert _reserve(store, "bulk", DEDICATED, starts=T0 + 10)["id"]
    assert store.apply(Release(store.accounts["bulk"], DEDICATED, ""))[0] is True
    later = store.apply(_mo("after release", DEDICATED, T0 + 10**9))[0]
    assert (later.account_id, later.reason) == (None, "lapsed")


def test_fees_are_ledger_entries_and_an_empty_balance_refuses(store: Store) -> None:
    _pool(store)
    before = store.balance()
    assert _reserve(store, "acme", DEDICATED)["points"] == 150  # reservation + first month
    assert store.balance() == before - 150
    assert _reserve(store, "other", SHARED, "AB", starts=T0)["points"] == 10
    assert store.balance("other") == 0
    assert isinstance(_reserve(store, "other", SHARED, "CD"), ops.InsufficientBalance)
    assert store.scalar("SELECT count(*) FROM inbound_reservations") == 2


def test_monthly_fee_is_charged_and_lapses_without_balance(store: Store) -> None:
    _pool(store)
    now = time.time()
    _reserve(store, "acme", DEDICATED, starts=now - 86400 * 40)  # paid until ~10 days ago
    _reserve(store, "bulk", SHARED, "AB", starts=now - 86400 * 40)  # shared: no monthly fee
    assert store.apply(ChargeMonthly())[0] == (1, 0)
    assert store.apply(ChargeMonthly())[0] == (0, 0)  # paid up now: nothing twice
    assert store.scalar("SELECT count(*) FROM ledger_entries WHERE note LIKE 'monthly%'") == 1
    # A holder who cannot pay loses the number at the end of the paid period.
    store.apply(ops.LedgerEntry(store.accounts["acme"], "correction", -store.balance()))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE inbound_reservations SET paid_until = starts_at "
                             "WHERE prefix_key = ''")
    assert store.apply(ChargeMonthly())[0] == (0, 1)
    lapsed = store.apply(_mo("hi", DEDICATED, now))[0]
    assert (lapsed.account_id, lapsed.reason) == (None, "lapsed")


def test_unknown_number_and_unheld_shortcode_prefix(store: Store) -> None:
    _pool(store)
    result = store.apply(_mo("hi", "48999999999", T0), _mo("hi", SHORT, T0))
    assert (result[0].account_id, result[0].reason) == (None, "unknown_number")
    assert result[1].account_id == store.accounts["acme"] and result[1].route == "shortcode"
    assert isinstance(_reserve(store, "other", SHORT), Conflict)  # assigned by the operator
    assert isinstance(_reserve(store, "other", "48111"), NotHeld)


def test_poll_window_edges_limit_and_outcomes(store: Store) -> None:
    """Window [starts_at, ends_at): one second before the start is out of window, the
    start itself counts, and so does the last second; exactly at the end is late."""
    _pool(store)
    _reserve(store, "acme", DEDICATED)
    poll_id = _poll(store)
    voter, other = "48600100200", "48600100300"
    results = store.apply(
        _mo("VOTE 5", DEDICATED, T0 - 1, voter),
        _mo("vote 5", DEDICATED, T0, voter),
        _mo("Vote: 1", DEDICATED, T0 + 3599, voter),
        _mo("VOTE 5!", DEDICATED, T0 + 3599.5, voter),  # a third within the day: over limit
        _mo("VOTE 7", DEDICATED, T0 + 10, other),
        _mo("VOTE 5", DEDICATED, T0 + 3600, other),
        _mo("hello", DEDICATED, T0 + 20, other))  # no prefix: not a vote
    assert [r.vote for r in results] == ["out_of_window", "accepted", "accepted",
                                         "over_limit", "unknown_option", "out_of_window", None]
    with store.engine.connect() as conn:
        stats = iq.poll_stats(conn, store.accounts["acme"], poll_id, None, 100)
        assert iq.poll_stats(conn, store.accounts["other"], poll_id, None, 100) is None
    assert stats["accepted"] == 2
    assert stats["refused"] == {"out_of_window": 2, "over_limit": 1, "not_allowed": 0,
                                "unknown_option": 1}
    assert [(o["keyword"], o["votes"], o["percent"]) for o in stats["options"]] == [
        ("1", 1, 50.0), ("5", 1, 50.0)]
    assert len(stats["messages"]) == 6
    # The replies were queued, charged, in the same transaction.
    texts = [row[0] for row in _rows(store, "SELECT text FROM messages ORDER BY id")]
    assert texts == ["Closed", "Great! ", "Sorry to hear that", "Enough", "Thanks", "Closed"]


def test_a_vote_counts_toward_the_limit_per_day_not_for_ever(store: Store) -> None:
    _pool(store)
    _reserve(store, "acme", DEDICATED)
    _poll(store, ends_at=T0 + 3 * 86400, limit_votes=2, limit_seconds=86400)
    votes = [T0, T0 + 60, T0 + 120, T0 + 86400 + 1]
    results = store.apply(*[_mo("VOTE 1", DEDICATED, at) for at in votes])
    assert [r.vote for r in results] == ["accepted", "accepted", "over_limit", "accepted"]


def test_discount_codes_are_given_once_and_an_empty_pool_is_handled(store: Store) -> None:
    _pool(store, replies_per_hour=100)
    _reserve(store, "acme", DEDICATED)
    assert store.apply(AddCodes(store.accounts["acme"], "summer", ("A1", "B2", "A1")))[0] \
        == (2, 1)
    assert store.apply(AddCodes(store.accounts["acme"], "summer", ("B2",)))[0] == (0, 1)
    _poll(store, limit_votes=0, discount_pool="summer")
    results = store.apply(*[_mo("VOTE 5", DEDICATED, T0 + n, f"4860010020{n}")
                            for n in range(3)])
    assert [r.pool_empty for r in results] == [False, False, True]
    rows = _rows(store, "SELECT code, vote_id FROM discount_codes ORDER BY code")
    assert all(vote_id for _, vote_id in rows)
    texts = sorted(r[0] for r in _rows(store, "SELECT text FROM messages"))
    assert texts == ["Great! A1", "Great! B2", "No codes"]


def test_allowed_groups_refuse_strangers(store: Store) -> None:
    _pool(store)
    _reserve(store, "acme", DEDICATED)
    member = ContactRow("48600100200", "Ann", None, None, None, ("vip",))
    assert store.apply(SaveContacts(store.accounts["acme"], (member,)))[0] == (1, 0)
    _poll(store, groups=json.dumps(["vip"]))
    results = store.apply(_mo("VOTE 5", DEDICATED, T0 + 1, "48600100200"),
                          _mo("VOTE 5", DEDICATED, T0 + 2, "48600100999"))
    assert [r.vote for r in results] == ["accepted", "not_allowed"]


def test_redelivered_completion_and_reassembly_after_restart_store_once(store: Store) -> None:
    _pool(store)
    _reserve(store, "acme", DEDICATED)
    first = _mo("hello", DEDICATED, T0)
    stored = store.apply(first)[0]
    assert isinstance(stored, InboundStored)
    assert store.apply(first)[0] is None  # the same completing part again: a redelivery
    # Parts kept before a restart, reassembled after it: a second completion of the
    # same fragments (the first one committed just before the stop) is not stored.
    assert store.apply(*[ops.FragmentSeen("smsc", "48600100200", DEDICATED, 0, 9, 2, n,
                                          b"part", None, f"k{n}") for n in (1, 2)]) == [True] * 2
    part_ids = [row[0] for row in _rows(store, "SELECT id FROM inbound_fragments WHERE "
                                               "dedupe_key IN ('k1', 'k2')")]
    whole = ops.InboundComplete("smsc", "48600100200", DEDICATED, 0, "partpart", b"partpart",
                                2, None, tuple(part_ids), None, ("k1", "k2"), T0)
    assert isinstance(store.apply(whole)[0], InboundStored)
    assert store.apply(whole)[0] is None
    assert store.scalar("SELECT count(*) FROM inbound_messages") == 2


def test_settings_need_a_holding_and_poll_prefixes_split_dedicated_text(store: Store) -> None:
    _pool(store)
    acme = store.accounts["acme"]
    op = SaveSettings(acme, DEDICATED, "", None, "Acme", "Thanks!", None, None,
                      "https://example.com/hook")
    assert isinstance(store.apply(op)[0], NotHeld)
    _reserve(store, "acme", DEDICATED)
    assert store.apply(op)[0] is True
    _poll(store)
    results = store.apply(_mo("vote 5", DEDICATED, T0 + 1), _mo("other 5", DEDICATED, T0 + 2))
    assert results[0].vote == "accepted" and results[0].forward_url == \
        "https://example.com/hook"
    assert results[1].vote is None and len(results[1].accepts) == 1  # the auto-reply
    items = _inbound(store, "acme")
    assert [(m["prefix"], m["body"]) for m in items] == [(None, "other 5"), ("vote", "5")]


@pytest.mark.parametrize("sender", ["Bank", "8080", "48500600701"])
def test_no_automatic_reply_to_machines_or_ourselves(store: Store, sender: str) -> None:
    _pool(store)
    store.apply(SaveSettings(store.accounts["acme"], SHORT, "", None, "Acme", "Thanks!",
                             None, None, None))
    result = store.apply(_mo("hi", SHORT, T0, sender))[0]
    assert result.accepts == ()
    assert result.reason == ("loop" if sender == SHARED else None)


def test_automatic_replies_per_sender_per_hour(store: Store) -> None:
    _pool(store, replies_per_hour=2)
    store.apply(SaveSettings(store.accounts["acme"], SHORT, "", None, "Acme", "Thanks!",
                             None, None, None))
    results = store.apply(*[_mo(f"hi {n}", SHORT, T0 + n) for n in range(3)])
    assert [len(r.accepts) for r in results] == [1, 1, 0]
    again = store.apply(_mo("hi again", SHORT, T0 + 10, "48600100999"))[0]
    assert len(again.accepts) == 1  # another sender has its own allowance


def test_several_polls_share_a_dedicated_number_by_prefix(store: Store) -> None:
    _pool(store)
    _reserve(store, "acme", DEDICATED)
    first = _poll(store)
    second = _poll(store, poll_id="0" * 31 + "2", prefix="Lody", prefix_key="lody",
                   options=(("tak", "tak", None), ("nie", "nie", None)))
    clash = store.apply(CreatePoll(**{**_poll_args(store), "poll_id": "0" * 31 + "3"}))[0]
    assert isinstance(clash, Conflict) and clash.field == "prefix"
    results = store.apply(_mo("VOTE 5", DEDICATED, T0 + 1), _mo("LODY tak", DEDICATED, T0 + 2),
                          _mo("lody 5", DEDICATED, T0 + 3))
    assert [r.vote for r in results] == ["accepted", "accepted", "unknown_option"]
    with store.engine.connect() as conn:
        assert iq.poll_stats(conn, store.accounts["acme"], first, None, 10)["accepted"] == 1
        stats = iq.poll_stats(conn, store.accounts["acme"], second, None, 10)
    assert (stats["accepted"], stats["refused"]["unknown_option"]) == (1, 1)


def _poll_args(store: Store) -> dict[str, Any]:
    return dict(
        poll_id="0" * 31 + "1", account_id=store.accounts["acme"], name="Ice cream",
        number=DEDICATED, prefix="VOTE", prefix_key="vote", starts_at=T0 + 100,
        ends_at=T0 + 200, sender="Acme", replies="{}", limit_votes=0, limit_seconds=None,
        groups=None, discount_pool=None, options=(("1", "1", None),), created_at=T0)
