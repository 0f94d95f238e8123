"""What must survive: MO parts across a restart, a store that is down while the SMSC
delivers, and an SMSC whose queue is full."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from smppd.protocol import constants as c
from tests.conftest import call, wait_for


def _inbound(running: Any) -> list[Any]:
    engine = create_engine(f"sqlite:///{running.path / 'smppd.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT text, parts FROM inbound_messages")).all()
    finally:
        engine.dispose()


def _break_store(running: Any, monkeypatch: Any) -> Any:
    """Every transaction fails with an I/O error (where the writer's transactions run:
    its process, or its thread); returns what mends it."""
    writer = running.daemon.writer
    target = writer.process if writer.process is not None else running.daemon.applier
    real_apply = target.apply

    def broken(*_args: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(target, "apply", broken)
    return lambda: monkeypatch.setattr(target, "apply", real_apply)


def test_mo_parts_survive_a_restart_between_parts(start_daemon: Any) -> None:
    """Checklist 25: part 1 is acked (so durably kept), the daemon restarts, part 2
    arrives at the new process: one whole message."""
    body = "first half and second half of a long MO message " * 4
    running = start_daemon()
    smsc = running.smsc
    call(smsc.inject_mo, "48500100200", "1234", body, order=[1])
    wait_for(lambda: len(smsc.deliver_responses) == 1, what="part 1 acked")
    assert set(smsc.deliver_responses.values()) == {0}
    running.client.close()
    call(running.daemon.stop)
    call(smsc.drop_all)
    restarted = start_daemon()
    call(smsc.inject_mo, "48500100200", "1234", body, order=[2])
    wait_for(lambda: _inbound(restarted), what="MO assembled after the restart")
    assert _inbound(restarted) == [(body, 2)]


def test_store_down_answers_temporary_error_then_dedupes_the_redelivery(
        start_daemon: Any, monkeypatch: Any) -> None:
    """Checklist 32: the database fails: deliver_sm gets ESME_RX_T_APPN (0x64), not an
    ack; the SMSC's redelivery after recovery is stored once."""
    running = start_daemon()
    smsc = running.smsc
    mend = _break_store(running, monkeypatch)
    call(smsc.inject_mo, "48500100200", "1234", "hello while down")
    wait_for(lambda: smsc.deliver_responses, what="an answer while the store is down")
    assert list(smsc.deliver_responses.values()) == [c.ESME_RX_T_APPN]
    status, ready = running.client.request("GET", "/readyz")
    assert status == 503 and ready["store"] == "unavailable"
    mend()
    for _ in range(2):  # the SMSC redelivers; a second copy arrives as well
        call(smsc.inject_mo, "48500100200", "1234", "hello while down")
    wait_for(lambda: len(smsc.deliver_responses) == 3, what="redeliveries answered")
    assert list(smsc.deliver_responses.values())[1:] == [0, 0]
    wait_for(lambda: _inbound(running), what="the MO stored")
    assert _inbound(running) == [("hello while down", 1)]


def test_an_mo_refused_while_the_store_is_down_arrives_by_the_smscs_own_retry(
        start_daemon: Any, monkeypatch: Any) -> None:
    """The fake SMSC retries a refused MO as a real one does (`redeliver_after`): the
    refusals while the store is down are answered ESME_RX_T_APPN, and the retry after
    recovery stores it once."""
    running = start_daemon()
    smsc = running.smsc
    smsc.behaviour.redeliver_after = 0.2
    mend = _break_store(running, monkeypatch)
    call(smsc.inject_mo, "48500100200", "1234", "retried by the SMSC")
    wait_for(lambda: smsc.redelivered >= 2, what="two retries refused while down")
    assert set(smsc.deliver_responses.values()) == {c.ESME_RX_T_APPN}
    mend()
    wait_for(lambda: _inbound(running), what="the retried MO stored")
    wait_for(lambda: 0 in smsc.deliver_responses.values(), what="the retry acknowledged")
    assert _inbound(running) == [("retried by the SMSC", 1)]


def test_queue_full_backs_off_and_nothing_fails(start_daemon: Any) -> None:
    """Checklist 5: ESME_RMSGQFUL is temporary: the bind backs off and every message
    is delivered in the end, none failed."""
    running = start_daemon()
    smsc = running.smsc
    smsc.behaviour.max_pending = 2  # beyond two unanswered submits: queue full
    smsc.behaviour.response_delay = 0.05
    ids = [running.client.send(to=f"+485001008{i:02d}")[1]["id"] for i in range(10)]
    for message_id in ids:
        assert running.client.wait_status(message_id, "delivered", timeout=30)
    refused = [r for r in smsc.submits if r.status == c.ESME_RMSGQFUL]
    assert refused, "the SMSC's queue never filled: the test did not test anything"


def test_a_part_that_cannot_be_encoded_fails_and_is_refunded(start_daemon: Any) -> None:
    """A text the SMSC's settings no longer allow (changed by a reload after the
    message was accepted) fails that message, refunded; the dispatcher goes on."""
    from smppd.daemon.router import Router, TextSettings
    from smppd.protocol.segmentation import SplitPolicy
    from smppd.protocol.text import CharsetProfile

    running = start_daemon()
    dispatcher = running.daemon.dispatcher
    call(running.smsc.drop_all)
    running.smsc.behaviour.bind_status = c.ESME_RBINDFAIL
    wait_for(lambda: not running.daemon.readiness()[0], what="not ready")
    _, long_one = running.client.send(text="long " * 100)
    _, short_one = running.client.send(text="short")
    dispatcher.set_router(Router({}, {}, TextSettings(CharsetProfile(),
                                                       SplitPolicy(max_parts=1))))
    running.smsc.behaviour.bind_status = None
    failed = running.client.wait_status(long_one["id"], "failed", timeout=15)
    assert failed["refunded"] == long_one["points"]
    assert failed["error_code"].startswith("unsendable")
    assert running.client.wait_status(short_one["id"], "delivered", timeout=15)


def test_a_backlog_larger_than_memory_is_read_back_from_the_store(start_daemon: Any) -> None:
    """The store is the queue: with room for 4 messages in memory, 40 accepted while
    unbound all go out, in order, once the bind is up."""
    running = start_daemon(memory_limit=4)
    dispatcher = running.daemon.dispatcher
    call(running.smsc.drop_all)
    running.smsc.behaviour.bind_status = c.ESME_RBINDFAIL
    wait_for(lambda: not running.daemon.readiness()[0], what="not ready")
    ids = [running.client.send(to=f"+485001010{i:02d}", text=f"backlog {i:02d}")[1]["id"]
           for i in range(40)]
    assert call(lambda: dispatcher.depth) <= 4 and call(lambda: dispatcher.spilled)
    running.smsc.behaviour.bind_status = None
    for message_id in ids:
        assert running.client.wait_status(message_id, "delivered", timeout=20)
    texts = [record.pdu.fields["short_message"].decode() for record in running.smsc.submits]
    assert texts == [f"backlog {i:02d}" for i in range(40)]
