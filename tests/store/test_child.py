"""The writer's transactions in their own process (smppd.store.child): what the
daemon changes in the writer's memory reaches it, what it answers crosses back
whatever it is, and its life is the daemon's (it outlives neither SIGTERM's drain
nor the daemon itself)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from smppd.inbound.pool import Pool
from smppd.store.batch import BatchApplier
from smppd.store.child import WriterProcess, portable
from smppd.store.context import WriterMemory
from smppd.store.ledger import BalanceRace
from tests.store.conftest import Store
from tests.store.test_store import accept
from tests.support.polling import until
from tests.support.process import ended


def _url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def child(store: Store) -> Any:
    process = WriterProcess(_url(store), None, WriterMemory())
    process.start()
    yield process
    process.stop()


def test_a_batch_is_committed_by_the_process_and_its_results_come_back(
        store: Store, child: WriterProcess) -> None:
    first, second = accept(store), accept(store, points=5000)  # acme has 1,000 points
    results = child.apply([first, second])
    assert results[0] == first.message_id
    assert type(results[1]).__name__ == "InsufficientBalance"
    assert store.message(first.message_id)["status"] == "queued"
    assert store.message(second.message_id) is None
    assert store.balance() == 1000 - 1


def test_a_bad_row_comes_back_as_the_same_error_and_nothing_of_the_batch_stays(
        store: Store, child: WriterProcess) -> None:
    """The writer writes a batch one by one after a DBAPIError: it must see one."""
    good = accept(store)
    with pytest.raises(IntegrityError):
        child.apply([good, accept(store, message_id=good.message_id)])
    assert store.message(good.message_id) is None
    assert child.apply([good]) == [good.message_id]  # the process goes on


def test_what_the_daemon_changes_in_the_writers_memory_is_sent_once(
        store: Store) -> None:
    memory = WriterMemory({"smsc": "all"})
    process = WriterProcess(_url(store), None, memory)

    def sent() -> dict[str, Any]:  # what apply() does once the change is on its way
        changed = process._changes()
        process._sent.update(changed)
        return changed

    first = sent()
    assert set(first) == {"log_level", "receipt_policy", "owner", "pending_receipts", "pool",
                          "admission"}
    assert sent() == {}
    memory.receipt_policy["smsc"] = "first"  # a reload changes the dict in place
    memory.inbound.pool = Pool()  # swapped whole: an equal pool is still news
    memory.owner = "instance-2"
    assert process._changes() == {"receipt_policy": {"smsc": "first"},
                                  "pool": memory.inbound.pool, "owner": "instance-2"}
    assert sent() != {}  # not marked sent until it was sent
    assert sent() == {}


def test_the_process_uses_the_receipt_policy_the_daemon_has_now(
        store: Store, child: WriterProcess) -> None:
    """A two-part message, one part delivered: under "all" it is not delivered yet,
    under "first" (set after the process started, as a reload would) it is."""
    from smppd.store import operations as ops

    child.memory.receipt_policy["smsc"] = "first"
    sent = accept(store, parts=2, smsc="smsc")
    child.apply([sent, ops.PartSubmitted(sent.message_id, 1, "smsc", "k1", "k1"),
                 ops.PartSubmitted(sent.message_id, 2, "smsc", "k2", "k2")])
    child.apply([ops.ReceiptSeen("smsc", "k1", "delivered", None)])
    assert store.message(sent.message_id)["status"] == "delivered"


def test_results_that_cannot_cross_roll_the_batch_back(store: Store) -> None:
    """Pickled before the commit: a result that cannot travel must not leave a batch
    committed that the daemon never hears of."""
    from smppd.store.child import Link, _apply

    class Unsendable(BatchApplier):
        def apply(self, conn: Any, batch: Any) -> list[Any]:
            conn.execute(text("UPDATE accounts SET balance = 1 WHERE name = 'acme'"))
            return [lambda: None]

    kind, error = pickle.loads(_apply(Link(store.engine), Unsendable(), [object()]))
    assert kind == "error" and "pickle" in str(error).lower()
    assert store.balance() == 1000


def test_an_exception_that_does_not_pickle_crosses_as_its_kind() -> None:
    race = BalanceRace(7)
    with pytest.raises(Exception):  # noqa: B017 - why portable() exists
        pickle.loads(pickle.dumps(race))
    crossed = portable(race)
    assert isinstance(crossed, DBAPIError) and "account 7" in str(crossed)

    class Locked(OperationalError):
        def __init__(self, what: str) -> None:
            super().__init__(None, None, RuntimeError(what))

    crossed = portable(Locked("database is locked"))
    assert isinstance(crossed, OperationalError) and "locked" in str(crossed)
    assert portable(KeyError("x")).args == ("x",)  # what pickles crosses as it is


def test_the_process_outlives_sigterm_and_ends_when_the_daemon_lets_go(
        store: Store, child: WriterProcess) -> None:
    """systemd signals the whole unit: the daemon's drain still writes through it."""
    assert child.process is not None
    os.kill(child.process.pid, signal.SIGTERM)
    os.kill(child.process.pid, signal.SIGINT)
    op = accept(store)
    assert child.apply([op]) == [op.message_id]
    child.stop()
    assert child.process.returncode == 0


def test_the_process_dies_with_the_daemon(store: Store, tmp_path: Path) -> None:
    """A daemon killed with SIGKILL takes its writer process along (PR_SET_PDEATHSIG)."""
    script = tmp_path / "daemon.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from smppd.store.child import WriterProcess
        from smppd.store.context import WriterMemory
        process = WriterProcess({_url(store)!r}, None, WriterMemory())
        process.start()
        print(process.pid, flush=True)
        time.sleep(60)
    """))
    daemon = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        assert daemon.stdout is not None
        writer = int(daemon.stdout.readline())
        assert Path(f"/proc/{writer}").exists()
        daemon.kill()
        daemon.wait(10)
        until(lambda: ended(writer), 10, "the writer process to die", interval=0.05)
    finally:
        daemon.kill()
        daemon.wait(10)




def test_an_unknown_database_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    """The process opens the database itself: a folder that does not exist is the
    daemon's error to report, and the process is gone, not waiting."""
    memory = WriterMemory()
    process = WriterProcess(f"sqlite:///{tmp_path / 'missing' / 'x.db'}", None, memory)
    process.start()
    try:
        with pytest.raises(OperationalError, match="writer process ended"):
            process.apply([])
    finally:
        process.stop()
    assert process.process is not None and process.process.returncode != 0


def test_every_refusal_a_batch_answers_with_crosses_intact() -> None:
    """The exceptions the store returns as results (not raises) are what the API turns
    into 402, 404 and 409 answers: each must come back from the process as it went."""
    from smppd.store.callback_operations import TooManyEndpoints
    from smppd.store.inbound_ops import Conflict, NotHeld
    from smppd.store.operations import InsufficientBalance

    for refusal, fields in ((InsufficientBalance(3, 1), ("needed", "balance")),
                            (Conflict("taken", "login"), ("field",)),
                            (NotHeld("not held"), ()),
                            (TooManyEndpoints(5), ("limit",)),
                            (KeyError("no account"), ())):
        crossed = pickle.loads(pickle.dumps(refusal, 5))
        assert type(crossed) is type(refusal) and str(crossed) == str(refusal)
        assert all(getattr(crossed, name) == getattr(refusal, name) for name in fields)


def test_the_operations_of_every_message_cross_as_they_are() -> None:
    """Pickled by their fields and rebuilt through __init__ (operations.py): equal on
    arrival, and cut to their columns exactly once."""
    from smppd.store import operations as ops

    sent = [ops.Accept(1, "01a2", "Acme", "48500100200", "PL", "zażółć", "ucs2", 2, 2, 7,
                       "smsc", "ref", '{"a":1}', 1.5, job_id="j", channel="api",
                       links=(("abc", "https://example.com"),)),
            ops.PartSubmitted("01a2", 1, "smsc", "id-1", "k" * 100),
            ops.PartFailed("01a2", 2, "smsc", "rejected", "0x0000000b"),
            ops.PartUnknown("01a2", 2, "smsc", "timeout"),
            ops.LateId("01a2", 1, "smsc", "id-2", "id-2", 0),
            ops.ReceiptSeen("smsc", None, "delivered", None, "text", "0A",
                            (("hex", "10"), ("dec", "0a"))),
            ops.PartResent("01a2", 2, "smsc", "connection")]
    arrived = pickle.loads(pickle.dumps(sent, 5))
    assert arrived == sent
    assert len(arrived[1].smsc_key) == len(sent[1].smsc_key) < 100


def test_a_process_whose_daemon_is_gone_ends_at_once(tmp_path: Path) -> None:
    """Handed to another parent before it could ask to die with the daemon: it ends.
    (Compared with the daemon's pid, not with 1: in a container the daemon may be
    PID 1.)"""
    import socket

    ours, theirs = socket.socketpair()
    with ours, theirs:
        child = subprocess.Popen([sys.executable, "-m", "smppd.store.child",
                                  str(theirs.fileno()), "999999999"],
                                 pass_fds=[theirs.fileno()])
        assert child.wait(30) == 0


def _raw(conn: Any) -> Any:
    return conn.connection.dbapi_connection


def test_one_connection_is_kept_between_batches_on_sqlite_the_pool_serves_a_server(
        store: Store) -> None:
    """Why it keeps one: see Link. On a server each batch checks one out (pre-ping)."""
    from smppd.store.child import Link

    link = Link(store.engine)
    try:
        with link.transaction() as conn:
            first = _raw(conn)
            checked_out = store.engine.pool.checkedout()
        with link.transaction() as conn:
            second = _raw(conn)
        if store.engine.dialect.name == "sqlite":
            assert first is second
            assert store.engine.pool.checkedout() == 1  # kept between batches
        else:
            assert checked_out == 1 and store.engine.pool.checkedout() == 0
    finally:
        link.close()
    assert store.engine.pool.checkedout() == 0


def test_after_a_failed_batch_the_next_commits_on_a_fresh_connection(store: Store) -> None:
    from smppd.store.child import Link, _apply

    class FailsOnce(BatchApplier):
        calls = 0

        def apply(self, conn: Any, batch: Any) -> list[Any]:
            FailsOnce.calls += 1
            self.seen = _raw(conn)
            conn.execute(text("UPDATE accounts SET balance = balance - 1 "
                              "WHERE name = 'acme'"))
            if FailsOnce.calls == 1:
                raise RuntimeError("a bug in the first batch")
            return ["done"]

    link, applier = Link(store.engine), FailsOnce()
    try:
        kind, error = pickle.loads(_apply(link, applier, [object()]))
        assert kind == "error" and "a bug in the first batch" in str(error)
        failed_on = applier.seen
        assert store.balance() == 1000  # rolled back
        assert pickle.loads(_apply(link, applier, [object()])) == ("ok", ["done"])
        assert store.balance() == 999
        if store.engine.dialect.name == "sqlite":
            assert applier.seen is not failed_on  # not trusted again
    finally:
        link.close()


def test_a_begin_refused_by_a_locked_file_fails_the_batch_not_the_next_one(
        tmp_path: Path) -> None:
    """SQLite's BEGIN IMMEDIATE runs in SQLAlchemy's begin event; when the file stays
    locked past the busy timeout it fails half-way into Connection.begin, and the kept
    connection must not carry that into the next batch."""
    import sqlite3

    from smppd.store import database
    from smppd.store.child import Link, _apply
    from smppd.store.limits import StoreLimits

    path = tmp_path / "locked.db"
    engine = database.make_engine(f"sqlite:///{path}",
                                  limits=StoreLimits(statement_timeout=0.2))
    database.upgrade(engine)
    applier = BatchApplier()
    link = Link(engine)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with link.transaction():
            pass  # the kept connection exists before the lock is taken
        holder.execute("BEGIN IMMEDIATE")
        kind, error = pickle.loads(_apply(link, applier, []))
        assert kind == "error" and "locked" in str(error).lower()
        holder.execute("ROLLBACK")
        assert pickle.loads(_apply(link, applier, [])) == ("ok", [])
    finally:
        holder.close()
        link.close()
        engine.dispose()
