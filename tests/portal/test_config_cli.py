"""The portal's configuration keys, `smppd user add|reset|list`, `smppd operator hash`,
migration 0009 against the tables, and PUT /v1/polls/{id} (the edit form's service)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from smppd import config
from smppd.portal import passwords
from smppd.store import database
from tests.support.pages import OPERATOR_HASH, PageClient


def _base(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    data = {"database": f"sqlite:///{tmp_path / 'smppd.db'}", "http": {"listen": "127.0.0.1:0"},
            "smscs": [{"name": "a", "host": "127.0.0.1", "port": 2775, "system_id": "s",
                       "password": "p"}],
            "accounts": [{"name": "acme", "token": "a-token-of-acme-0001"}]}
    data.update(extra)
    return data


def test_portal_and_operator_keys_are_read_and_checked(tmp_path: Path) -> None:
    settings = config.parse(_base(tmp_path, operators=[{"login": "noc",
                                                        "password_hash": OPERATOR_HASH}],
                                  portal={"base_url": "https://sms.example/",
                                          "idle_timeout": 600, "default_locale": "pl"}))
    assert settings.operators[0].login == "noc" and "noc" in repr(settings.operators[0])
    assert OPERATOR_HASH not in repr(settings)  # never in a log line
    assert settings.portal.secure_cookies and settings.portal.idle_timeout == 600
    assert settings.portal.default_locale == "pl"
    assert config.parse(_base(tmp_path)).portal.enabled  # on by default, no operators
    with pytest.raises(config.ConfigError) as error:
        config.parse(_base(tmp_path, operators=[{"login": "noc", "password_hash": "hunter2"},
                                                {"login": 7, "password_hash": OPERATOR_HASH},
                                                {"login": "noc", "password_hash": OPERATOR_HASH}],
                           portal={"idle_timeout": 5, "absolute_timeout": 61,
                                   "default_locale": "de", "base_url": "sms.example",
                                   "colour": "blue"}), "smppd.yaml")
    problems = str(error.value)
    for expected in (
            "operators[0].password_hash: expected an argon2 hash ($argon2id$...): make one "
            "with `smppd operator hash`",
            "operators[1].login: expected text in quotes",
            "operators[2].login: duplicate operator login (also operators[0])",
            "portal.idle_timeout: expected at least 60",
            "portal.default_locale: expected one of en, pl",
            "portal.base_url: expected an http:// or https:// URL",
            "portal.colour: unknown key"):
        assert f"smppd.yaml: {expected}" in problems, problems


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smppd.cli", *args], capture_output=True,
                          text=True, input=stdin, timeout=60)


def test_user_add_prints_a_one_time_password_that_signs_in(start_daemon: Any,
                                                            tmp_path: Path) -> None:
    running = start_daemon()
    path = tmp_path / "smppd.yaml"
    path.write_text(yaml.safe_dump(_base(tmp_path)))
    added = _cli("user", "add", "acme", "maria@acme.example", "--role", "sender", "--locale",
                 "pl", "--config", str(path))
    assert added.returncode == 0, added.stderr
    password = re.search(r"one-time password: (\S+)", added.stdout).group(1)
    client = PageClient(running.daemon.http_port)
    assert client.login("maria@acme.example", password).location == "/portal/password"
    again = _cli("user", "add", "acme", "maria@acme.example", "--role", "viewer", "--config",
                 str(path))
    assert again.returncode == 1 and "taken" in again.stderr
    nobody = _cli("user", "add", "ghost", "x1y2z3", "--role", "owner", "--config", str(path))
    assert nobody.returncode == 1 and "no account named 'ghost'" in nobody.stderr
    bad = _cli("user", "add", "acme", "a b", "--role", "owner", "--config", str(path))
    assert bad.returncode == 2 and "LOGIN:" in bad.stderr
    listed = _cli("user", "list", "--config", str(path))
    assert "maria@acme.example" in listed.stdout and "one-time" in listed.stdout
    reset = _cli("user", "reset", "maria@acme.example", "--config", str(path))
    assert reset.returncode == 0
    fresh = re.search(r"one-time password: (\S+)", reset.stdout).group(1)
    assert fresh != password
    assert client.get("/portal/password").status == 303  # the old session was signed out


def test_operator_hash_reads_stdin_and_the_hash_verifies() -> None:
    done = _cli("operator", "hash", stdin="a long operator password\n")
    assert done.returncode == 0, done.stderr
    hashed = done.stdout.strip()
    assert hashed.startswith("$argon2id$")
    assert passwords.verify(hashed, "a long operator password")
    short = _cli("operator", "hash", stdin="short\n")
    assert short.returncode == 2 and "at least 10" in short.stderr


def test_the_portal_migration_goes_down_and_up_again(tmp_path: Path) -> None:
    """(That the migrations make what the code declares is checked for every table, on
    both backends, in tests/store/test_rollups.py.)"""
    from alembic import command
    from sqlalchemy import inspect

    engine = database.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    database.upgrade(engine)
    database.upgrade(engine)  # idempotent
    config = database._alembic_config(engine)
    command.downgrade(config, "0008")  # the revision before the portal's (0009)
    assert "portal_users" not in inspect(engine).get_table_names()
    command.upgrade(config, "head")
    assert {"portal_users", "portal_sessions"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_a_poll_is_edited_and_its_options_lock_once_votes_count(start_daemon: Any) -> None:
    running = start_daemon(inbound_numbers=[{"number": "+48500600700", "kind": "dedicated"}])
    client = running.client
    assert client.request("POST", "/v1/inbound/numbers", {"number": "+48500600700"})[0] == 201
    now = time.time()
    iso = lambda moment: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))  # noqa: E731
    body = {"name": "Q", "number": "+48500600700", "from": "Acme", "starts_at": iso(now - 60),
            "ends_at": iso(now + 3600), "options": [{"keyword": "yes"}, {"keyword": "no"}]}
    status, made = client.request("POST", "/v1/polls", body)
    assert status == 201
    status, _ = client.request("PUT", f"/v1/polls/{made['id']}", {
        **body, "name": "Q2", "options": [{"keyword": "yes"}, {"keyword": "no"},
                                          {"keyword": "maybe"}]})
    assert status == 200
    status, poll = client.request("GET", f"/v1/polls/{made['id']}")
    assert poll["name"] == "Q2" and [o["keyword"] for o in poll["options"]] == [
        "yes", "no", "maybe"]
    from tests.conftest import call

    call(running.smsc.inject_mo, "48600100200", "48500600700", "yes")
    deadline = time.monotonic() + 10
    while client.request("GET", f"/v1/polls/{made['id']}/stats")[1]["total"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, refused = client.request("PUT", f"/v1/polls/{made['id']}", {
        **body, "options": [{"keyword": "yes"}, {"keyword": "nope"}]})
    assert status == 409 and refused["field"] == "options"
    status, _ = client.request("PUT", f"/v1/polls/{made['id']}", {
        **body, "options": [{"keyword": "yes", "reply": "Thanks!"}, {"keyword": "no"},
                            {"keyword": "maybe"}]})
    assert status == 200  # replies may change
    status, moved = client.request("PUT", f"/v1/polls/{made['id']}", {
        **body, "number": "+48500600701"})
    assert status == 409 and moved["field"] == "number"
    other = running.other_client()
    assert other.request("PUT", f"/v1/polls/{made['id']}", body)[0] == 404
