"""The inbound keys of the configuration: inbound_numbers, inbound, smtp."""

from __future__ import annotations

from typing import Any

import pytest

from smppd import config

BASE: dict[str, Any] = {
    "database": "sqlite:///x.db", "http": {"listen": "127.0.0.1:0"},
    "smscs": [{"name": "a", "host": "h", "port": 1, "system_id": "x", "password": "p"}],
    "accounts": [{"name": "acme", "token": "t" * 16}]}


def test_a_pool_with_prices_and_smtp() -> None:
    settings = config.parse(dict(BASE, inbound_numbers=[
        {"number": "+48500600700", "kind": "dedicated", "price": {"reservation": 10,
                                                                 "monthly": 5}},
        {"number": "+48 500 600 701", "kind": "shared"},
        {"number": "4600", "kind": "shortcode", "account": "acme"}],
        inbound={"auto_replies_per_hour": 3},
        smtp={"host": "127.0.0.1", "port": 2525, "from": "smppd@example.com"}), "t.yaml")
    assert [(n.number, n.kind, n.account, n.reservation_fee, n.monthly_fee)
            for n in settings.inbound_numbers] == [
        ("48500600700", "dedicated", None, 10, 5), ("48500600701", "shared", None, 0, 0),
        ("4600", "shortcode", "acme", 0, 0)]
    assert settings.auto_replies_per_hour == 3
    assert settings.smtp is not None and settings.smtp.sender == "smppd@example.com"


@pytest.mark.parametrize(("extra", "problem"), [
    ({"inbound_numbers": [{"number": "x", "kind": "shared"}]}, "inbound_numbers[0].number"),
    ({"inbound_numbers": [{"number": "4600", "kind": "free"}]}, "inbound_numbers[0].kind"),
    ({"inbound_numbers": [{"number": "4600", "kind": "shortcode"}]},
     "inbound_numbers[0].account"),
    ({"inbound_numbers": [{"number": "4600", "kind": "shared", "account": "acme"}]},
     "inbound_numbers[0].account"),
    ({"inbound_numbers": [{"number": "4600", "kind": "dedicated", "account": "nobody"}]},
     "inbound_numbers[0].account"),
    ({"inbound_numbers": [{"number": "4600", "kind": "dedicated"},
                          {"number": "+4600", "kind": "shared"}]}, "inbound_numbers[1].number"),
    ({"inbound_numbers": [{"number": "4600", "kind": "dedicated",
                           "price": {"monthly": -1}}]}, "inbound_numbers[0].price.monthly"),
    ({"inbound_numbers": [{"number": "4600", "kind": "dedicated", "colour": 1}]},
     "inbound_numbers[0].colour"),
    ({"inbound_numbers": "4600"}, "inbound_numbers"),
    ({"inbound": {"auto_replies_per_hour": -1}}, "inbound.auto_replies_per_hour"),
    ({"smtp": {"port": 25}}, "smtp.host"),
    ({"smtp": {"host": "h", "from": "nobody"}}, "smtp.from"),
])
def test_problems_name_the_key(extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(config.ConfigError) as error:
        config.parse(dict(BASE, **extra), "t.yaml")
    assert f"t.yaml: {problem}:" in str(error.value)
