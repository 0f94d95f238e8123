"""Fixtures for daemon tests: a Daemon on a real SQLite file in the shared reactor,
bound over real TCP to the fake SMSC, driven over real HTTP."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smppd.fake_smsc import FakeSmsc
from twisted.internet import reactor

from smppd import config
from smppd.daemon.app import Daemon
from tests.conftest import call, wait_for
from tests.support.polling import until

TOKEN_A = "token-of-account-a-0001"
TOKEN_B = "token-of-account-b-0002"


def settings_dict(database: str, smsc_port: int, **overrides: Any) -> dict[str, Any]:
    smsc = {"name": "carrier-a", "host": "127.0.0.1", "port": smsc_port,
            "system_id": "acme", "password": "secret", "window": 20,
            "response_timeout": 5, "reconnect": {"initial": 0.05, "max": 0.5}}
    smsc.update(overrides.pop("smsc", None) or {})
    data = {
        "database": database,
        "http": {"listen": "127.0.0.1:0"},
        "smscs": [smsc, *overrides.pop("extra_smscs", [])],
        "accounts": [{"name": "acme", "token": TOKEN_A, "balance": 100_000},
                     {"name": "other", "token": TOKEN_B, "balance": 100}],
        "retry": {"initial": 0.05, "max": 0.5},
        # Throttling paced for tests: holds and recovery steps in tens of milliseconds,
        # not the seconds a carrier needs (smppd.throttle.rate.Pacing).
        "throttle": {"pause_base": 0.01, "pause_max": 0.2, "recovery_interval": 0.05},
    }
    data.update(overrides)
    return data


class Client:
    """A keep-alive HTTP/1.1 client that returns (status, JSON body)."""

    def __init__(self, port: int, token: str | None = TOKEN_A) -> None:
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(self, method: str, path: str, body: Any = None, token: str | None = ...,
                raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        token = self.token if token is ... else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        payload = raw if raw is not None else (None if body is None else json.dumps(body))
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.getheader("content-type", "").startswith("application/json"):
            return response.status, json.loads(data)
        return response.status, data.decode()

    def send(self, to: str = "+48500100200", text: str = "hello", sender: str = "Acme",
             **extra: Any) -> tuple[int, Any]:
        return self.request("POST", "/v1/messages", {"to": to, "from": sender, "text": text,
                                                     **extra})

    def message(self, message_id: str) -> dict[str, Any]:
        status, body = self.request("GET", f"/v1/messages/{message_id}")
        assert status == 200, body
        return body

    def wait_status(self, message_id: str, wanted: set[str] | str, timeout: float = 10) -> Any:
        wanted = {wanted} if isinstance(wanted, str) else wanted
        seen: dict[str, Any] = {}

        def reached() -> Any:
            seen.update(self.message(message_id))
            return seen if seen["status"] in wanted else None

        return until(reached, timeout, f"message {message_id} to be {sorted(wanted)}",
                     detail=lambda: f"it is {seen.get('status')}")

    def close(self) -> None:
        self.conn.close()


class Running:
    def __init__(self, daemon: Daemon, smsc: FakeSmsc, path: Path) -> None:
        self.daemon = daemon
        self.smsc = smsc
        self.path = path
        self.client = Client(daemon.http_port)

    def other_client(self, token: str | None = TOKEN_B) -> Client:
        return Client(self.daemon.http_port, token)


@pytest.fixture
def start_daemon(smsc: FakeSmsc, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(wait_bound: bool = True, database: str | None = None,
              memory_limit: int = 20_000, **overrides: Any) -> Running:
        db = database or f"sqlite:///{tmp_path / 'smppd.db'}"
        settings = config.parse(settings_dict(db, smsc.port, **overrides), "test.yaml")
        daemon = Daemon(settings, reactor, memory_limit=memory_limit)
        call(daemon.start)
        running = Running(daemon, smsc, tmp_path)
        started.append(running)
        if wait_bound:
            wait_for(lambda: daemon.readiness()[0], what="daemon ready")
        return running

    yield start
    for running in started:
        running.client.close()
        call(running.daemon.stop, drain_timeout=2.0)
