"""SIGHUP, one change at a time, on the daemon as a process with its configuration
file rewritten: an SMSC added (and later removed: it unbinds), routes and prices per prefix,
an account removed (its token then gets 401), the throughput of an SMSC (measured
at the fake SMSC, submits per second), the database and the listen address (refused:
they need a restart), and a file that parses but is invalid (refused whole: the old
configuration keeps working)."""

from __future__ import annotations

import copy
import signal
import socket
from pathlib import Path
from typing import Any

import yaml
from smppd.fake_smsc import Behaviour, FakeSmsc

from tests.conftest import call, wait_for
from tests.support.peer import record_submit_times
from tests.support.process import TOKEN, DaemonProcess, free_port, post_many, query
from tests.support.running import Client

TEMP_TOKEN = "temporary-account-token-0001"


def _smsc(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, "system_id": "acme",
            "password": "secret", "window": 10, "response_timeout": 10, **extra}


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _texts(smsc: FakeSmsc) -> list[str]:
    return [record.pdu.fields["short_message"].decode() for record in list(smsc.submits)]


def test_sighup_matrix(smsc: FakeSmsc, tmp_path: Path) -> None:
    second = FakeSmsc(Behaviour())
    second_port = call(second.listen)
    http_port, other_port = free_port(), free_port()
    path = tmp_path / "smppd.yaml"
    db = tmp_path / "smppd.db"
    base: dict[str, Any] = {
        "database": f"sqlite:///{db}",
        "log_level": "info",
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "smscs": [_smsc("carrier-a", smsc.port)],
        "accounts": [{"name": "acme", "token": TOKEN, "balance": 100_000},
                     {"name": "temp", "token": TEMP_TOKEN, "balance": 100}],
    }
    _write(path, base)
    daemon = DaemonProcess(path, http_port)

    def reload(data: dict[str, Any], expect: str) -> None:
        before = daemon.log.read_text()
        _write(path, data)
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: expect in daemon.log.read_text()[len(before):],
                 what=f"the reload logging {expect!r}")

    try:
        daemon.start()
        acme, temp = Client(http_port, TOKEN), Client(http_port, TEMP_TOKEN)
        assert temp.send()[0] == 201

        # An SMSC added, routes and prices per prefix, an account removed, a throughput.
        routed = copy.deepcopy(base)
        routed["smscs"] = [_smsc("carrier-a", smsc.port, throughput=20),
                           _smsc("carrier-b", second_port.getHost().port)]
        routed["routes"] = [{"prefix": "+4860", "smsc": "carrier-b"},
                            {"prefix": "+48", "smsc": "carrier-a"}]
        routed["pricing"] = {"default": 1, "prefixes": {"+4860": 3}}
        routed["accounts"] = base["accounts"][:1]
        reload(routed, "smsc carrier-b: added")
        wait_for(lambda: second.bound_connections, what="carrier-b bound")
        status, to_b = acme.send(to="+48600100200", text="to b, 3 points")
        assert (status, to_b["points"]) == (201, 3)
        status, to_a = acme.send(to="+48500100200", text="to a, 1 point")
        assert (status, to_a["points"]) == (201, 1)
        acme.wait_status(to_b["id"], "delivered")
        acme.wait_status(to_a["id"], "delivered")
        assert _texts(second) == ["to b, 3 points"]
        assert "to a, 1 point" in _texts(smsc)
        status, refused = temp.send()
        assert status == 401, refused
        status, body = acme.send(to="+12025550123")
        assert (status, body["field"]) == (400, "to")  # the routes now cover +48 only

        # The new throughput, measured where it matters: at the SMSC.
        times = record_submit_times(smsc)
        accepted = post_many(http_port, [f"paced {i}" for i in range(60)], connections=10)
        assert len(accepted) == 60
        wait_for(lambda: len(times) >= 60, timeout=30, what="60 submits at carrier-a")
        rate = (len(times) - 1) / (times[-1] - times[0])
        print(f"\nthroughput after the reload: {rate:.1f} submit_sm/s at the SMSC "
              "(configured 20)")
        assert 10 <= rate <= 20 * 1.15

        # The database and the listen address need a restart: refused, not applied.
        moved = copy.deepcopy(routed)
        moved["database"] = f"sqlite:///{tmp_path / 'other.db'}"
        moved["http"] = {"listen": f"127.0.0.1:{other_port}"}
        reload(moved, "http.listen: needs a restart")
        assert "database: needs a restart" in daemon.log.read_text()
        assert not (tmp_path / "other.db").exists() and not _listening(other_port)
        status, kept = acme.send(text="still the first database")
        assert status == 201
        assert query(db, "SELECT text FROM messages WHERE id = ?", kept["id"]) == [
            ("still the first database",)]

        # A file that parses but is invalid is refused whole; the old one keeps working.
        invalid = copy.deepcopy(routed)
        invalid["smscs"][0]["window"] = 0
        invalid["pricing"]["prefixes"] = {"+4860": 7}
        reload(invalid, "reload refused")
        assert "smscs[0].window" in daemon.log.read_text()
        status, still = acme.send(to="+48600100201", text="old prices")
        assert (status, still["points"]) == (201, 3)
        assert daemon.ready()

        # carrier-b removed (and its route): new traffic to +4860 goes to carrier-a.
        removed = copy.deepcopy(routed)
        removed["smscs"] = removed["smscs"][:1]
        removed["routes"] = [{"prefix": "+48", "smsc": "carrier-a"}]
        removed["pricing"] = {"default": 1}
        reload(removed, "smsc carrier-b: removed; unbinding")
        wait_for(lambda: "smsc=carrier-b removed: unbound" in daemon.log.read_text(),
                 what="carrier-b unbound after its removal")
        wait_for(lambda: not second.bound_connections, what="carrier-b's bind closed")
        status, after = acme.send(to="+48600100202", text="b is gone")
        assert (status, after["points"]) == (201, 1)
        acme.wait_status(after["id"], "delivered")
        assert "b is gone" in _texts(smsc) and "b is gone" not in _texts(second)
    finally:
        daemon.stop()
        call(second_port.stopListening)
        call(second.drop_all)
    log = daemon.log.read_text()
    assert "Traceback" not in log and TEMP_TOKEN not in log and TOKEN not in log
