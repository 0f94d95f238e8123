"""SMPP time format and command_status classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from smppd.protocol import command_status as cs
from smppd.protocol import constants as c
from smppd.protocol import smpp_time
from smppd.protocol.command_status import Action


def test_relative_and_absolute_times() -> None:
    """Checklist 29."""
    assert smpp_time.relative(timedelta(minutes=1440)) == "000001000000000R"
    assert smpp_time.relative(timedelta(minutes=1)) == "000000000100000R"
    nine = datetime(2026, 11, 22, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    assert smpp_time.absolute(nine) == "261122090000008+"
    west = datetime(2026, 11, 22, 9, 0, 0, 300_000, tzinfo=timezone(timedelta(hours=-5)))
    assert smpp_time.absolute(west) == "261122090000320-"
    assert smpp_time.parse("261122090000008+") == nine
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert smpp_time.parse("000001000000000R", now) == now + timedelta(days=1)


@pytest.mark.parametrize("bad", ["", "2611220900000", "26112209000000X+", "abcdefghijklmnop"])
def test_bad_smpp_times_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="SMPP time"):
        smpp_time.parse(bad)


def test_absolute_needs_timezone_and_quarter_hours() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        smpp_time.absolute(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="quarter hours"):
        smpp_time.absolute(datetime(2026, 1, 1, tzinfo=timezone(timedelta(minutes=10))))


@pytest.mark.parametrize(("status", "action"), [
    (c.ESME_ROK, Action.OK),
    (c.ESME_RTHROTTLED, Action.THROTTLED),
    (c.ESME_RMSGQFUL, Action.QUEUE_FULL),
    (c.ESME_RSYSERR, Action.RETRY),
    (c.ESME_RX_T_APPN, Action.RETRY),
    (c.ESME_RINVSRCADR, Action.FAIL),
    (c.ESME_RINVDSTADR, Action.FAIL),
    (c.ESME_RX_R_APPN, Action.FAIL),
    (c.ESME_RINVBNDSTS, Action.RECONNECT),
    (0x0400, Action.FAIL),  # vendor code: not retried blindly
])
def test_submit_status_actions(status: int, action: Action) -> None:
    """Checklist 6: every code the table knows, and an unknown one."""
    assert cs.classify_submit(status) is action


def test_every_known_code_has_a_deliberate_action() -> None:
    for status, action in cs.DEFAULT_SUBMIT_ACTIONS.items():
        assert cs.classify_submit(status) is action
    assert cs.classify_submit(0x0A, {0x0A: Action.RETRY}) is Action.RETRY


def test_auth_failures() -> None:
    assert cs.is_auth_failure(c.ESME_RINVPASWD)
    assert cs.is_auth_failure(c.ESME_RINVSYSID)
    assert not cs.is_auth_failure(c.ESME_RALYBND)
    assert c.status_name(c.ESME_RINVPASWD) == "ESME_RINVPASWD"
    assert c.status_name(0x1234) == "0x00001234"
