"""Logging for operators: journald priorities without a second time stamp under
systemd, Twisted's events in Python logging, a PDU trace at DEBUG that never
shows a password, and subscriber numbers masked at INFO and above."""

from __future__ import annotations

import ast
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppd import logs
from smppd.protocol import pdu as codec
from smppd.protocol.trace import PduTrace
from tests.conftest import call, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _record(level: int, message: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad")
        except ValueError:
            import sys
            exc_info = sys.exc_info()
    return logging.LogRecord("smppd.x", level, __file__, 1, message, (), exc_info)


@pytest.mark.parametrize(("level", "prefix"), [
    (logging.DEBUG, "<7>"), (logging.INFO, "<6>"), (logging.WARNING, "<4>"),
    (logging.ERROR, "<3>"), (logging.CRITICAL, "<2>")])
def test_journal_lines_carry_the_priority_and_no_time_stamp(level: int, prefix: str) -> None:
    line = logs.JournalFormatter().format(_record(level, "bound"))
    assert line == f"{prefix}smppd.x: bound"


def test_every_line_of_a_traceback_keeps_the_priority() -> None:
    lines = logs.JournalFormatter().format(_record(logging.ERROR, "failed", exc=True))
    assert len(lines.splitlines()) > 3
    assert all(line.startswith("<3>") for line in lines.splitlines())


def test_journald_is_detected_by_the_stream_it_names(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with (tmp_path / "journal").open("w") as journal, (tmp_path / "other").open("w") as other:
        status = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        assert logs.under_journald(journal)
        assert not logs.under_journald(other)  # stderr redirected elsewhere by the unit
        assert not logs.under_journald(io.StringIO())
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not logs.under_journald(journal)


def test_configure_under_journald_writes_prefixed_lines(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        with (tmp_path / "journal").open("w+") as journal:
            status = os.fstat(journal.fileno())
            monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
            logs.configure("info", journal)
            logging.getLogger("smppd.connector").warning("smsc=a unbound: %s", "lost")
            logging.getLogger("smppd.connector").debug("not shown at info")
            journal.flush()
            journal.seek(0)
            assert journal.read() == "<4>smppd.connector: smsc=a unbound: lost\n"
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_twisted_events_reach_python_logging(caplog: pytest.LogCaptureFixture) -> None:
    from twisted.internet import reactor
    from twisted.logger import Logger

    from smppd.twistedlog import install

    install(reactor)
    caplog.set_level(logging.WARNING)
    Logger(namespace="smppd.test").error("reactor trouble {what}", what="here")
    assert any(r.name == "smppd.twisted" and r.levelno == logging.ERROR
               and "reactor trouble here" in r.getMessage() for r in caplog.records)


# Masking ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("number", "masked"), [
    ("+48500100200", "+48500***200"), ("48500100200", "48500***200"),
    ("+491701234567", "+49170****567"), ("4600", "***0"), ("Acme", "Acme"), ("", ""),
    (None, "")])
def test_mask_number(number: Any, masked: str) -> None:
    assert logs.mask_number(number) == masked


@given(st.text("0123456789", min_size=7, max_size=20), st.booleans())
def test_a_masked_number_never_shows_whole(digits: str, plus: bool) -> None:
    number = ("+" if plus else "") + digits
    masked = logs.mask_number(number)
    assert len(masked) == len(number) and "***" in masked
    assert masked.count("*") >= 3 and digits not in masked


_NUMBER_WORDS = ("source", "destination", "recipient", "sender", "number", "msisdn")


def _masked_or_harmless(node: ast.expr) -> bool:
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "mask_number":
        return True
    names = [n.attr if isinstance(n, ast.Attribute) else n.id
             for n in ast.walk(node) if isinstance(n, ast.Attribute | ast.Name)]
    return not any(word in name.lower() for name in names for word in _NUMBER_WORDS)


def test_every_log_call_that_prints_a_number_masks_it() -> None:
    """Static guard: a log call at any level whose arguments name a source,
    destination, recipient, sender or number passes it through mask_number
    (DEBUG-only PDU trace excepted: it is the carrier-debugging level)."""
    offenders = []
    for path in (ROOT / "smppd").rglob("*.py"):
        if path.name == "trace.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("info", "warning", "error", "exception", "critical",
                                           "log")
                    and getattr(node.func.value, "id", "") in ("log", "logger", "logging")):
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for arg in node.args[1:]
                          if not _masked_or_harmless(arg)]
    assert not offenders, offenders


def test_mo_log_lines_mask_the_numbers(start_daemon, smsc: Any,  # type: ignore[no-untyped-def]
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "smppd")
    start_daemon()
    call(smsc.inject_mo, "48500100200", "48600700800", "hello")
    wait_for(lambda: any("MO from" in r.getMessage() for r in caplog.records), what="MO logged")
    line = next(r.getMessage() for r in caplog.records if "MO from" in r.getMessage())
    assert "MO from 48500***200 to 48600***800" in line
    assert not any("48500100200" in r.getMessage() for r in caplog.records
                   if r.levelno >= logging.INFO)


# PDU trace -------------------------------------------------------------------------------

def test_pdu_trace_over_tcp_hides_the_password(smsc: Any, connect,  # type: ignore[no-untyped-def]
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "smppd.pdu")
    connector, listener = connect()
    call(connector.submit, {"destination_addr": "48500100200", "short_message": b"secret text",
                            "registered_delivery": 1}, "m1")
    wait_for(lambda: "m1" in listener.results and listener.delivers, what="response and receipt")
    wait_for(lambda: sum("deliver_sm_resp" in r.getMessage() for r in caplog.records),
             what="the receipt's answer traced")
    lines = [r.getMessage() for r in caplog.records if r.name == "smppd.pdu"]
    bind = next(line for line in lines if " > bind_transceiver " in line)
    assert "password='***'" in bind and "secret'" not in bind and "system_id='acme'" in bind
    assert any(" < bind_transceiver_resp seq=1 status=ESME_ROK" in line for line in lines)
    submit = next(line for line in lines if " > submit_sm " in line)
    assert "destination_addr='48500100200'" in submit and "<11 octets>" in submit
    assert "secret text" not in " ".join(lines)
    receipt = next(line for line in lines if " < deliver_sm " in line)
    assert "stat:DELIVRD" in receipt  # a receipt's text is what one debugs
    assert all(line.startswith("smsc=carrier-a ") for line in lines)


def test_pdu_trace_is_silent_unless_debug(smsc: Any, connect,  # type: ignore[no-untyped-def]
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "smppd.pdu")
    connector, listener = connect()
    call(connector.submit, {"destination_addr": "48500", "short_message": b"x"}, "m1")
    wait_for(lambda: "m1" in listener.results, what="response")
    assert not [r for r in caplog.records if r.name == "smppd.pdu"]


def test_pdu_trace_switched_on_mid_stream_waits_for_a_pdu_boundary(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "smppd.pdu")
    first = codec.encode(codec.make("enquire_link", 7))
    second = codec.encode(codec.make("submit_sm_resp", 8, message_id="abc123"))
    trace = PduTrace("a")
    trace.received(first[5:])  # the tail of a PDU whose start it never saw: ignored
    trace.received(second[:18])  # a PDU's start, in two reads
    trace.received(second[18:] + first)
    trace.received(b"\x00\x00\x00\x01garbage")  # impossible length: drops the framing
    trace.received(first)
    assert [r.getMessage() for r in caplog.records] == [
        "smsc=a < submit_sm_resp seq=8 status=ESME_ROK message_id='abc123'",
        "smsc=a < enquire_link seq=7", "smsc=a < enquire_link seq=7"]


def test_user_errors_carry_the_error_priority_under_journald(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (tmp_path / "journal").open("w+") as journal:
        logs.print_error("a.yaml: smscs[0].window: bad\na.yaml: http: missing", journal)
        status = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        logs.print_error("a.yaml: accounts: missing", journal)
        journal.seek(0)
        assert journal.read().splitlines() == [
            "a.yaml: smscs[0].window: bad", "a.yaml: http: missing",
            "<3>a.yaml: accounts: missing"]


def test_the_daemon_under_journald_logs_priorities_without_time_stamps(
        smsc: Any, tmp_path: Path) -> None:
    from tests.support.process import DaemonProcess, free_port, write_config

    http_port = free_port()
    daemon = DaemonProcess(write_config(tmp_path, smsc.port, http_port), http_port)
    daemon.log.touch()
    status = os.stat(daemon.log)
    try:
        daemon.start(extra_env={"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
    finally:
        daemon.stop()
    lines = daemon.log.read_text().splitlines()
    assert "<6>smppd.connector: smsc=carrier-a bound as transceiver (SMSC system_id " \
           "'fakesmsc')" in lines
    assert all(re.match(r"<[2-7]>[\w.]+: ", line) for line in lines), lines
    assert not any(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line) for line in lines)
