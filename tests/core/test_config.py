"""Configuration: every class of mistake gives one line naming the file, the key
path and what was expected; `smppd check-config` prints the same and exits 78
(EX_CONFIG, which the unit's RestartPreventExitStatus= names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from smppd import cli, config
from smppd.store.limits import StoreLimits
from smppd.throttle.rate import Pacing

VALID = """
database: sqlite:///smppd.db
http:
  listen: 127.0.0.1:8080
smscs:
  - name: carrier-a
    host: 127.0.0.1
    port: 2775
    system_id: acme
    password: ${CARRIER_A_PASSWORD}
    bind: transceiver
    window: 10
    throughput: 100
accounts:
  - name: acme
    token: ${ACME_TOKEN}
    balance: 10000
"""


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_A_PASSWORD", "secret")
    monkeypatch.setenv("ACME_TOKEN", "a-token-of-twenty-chars")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smppd.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(config.ConfigError) as caught:
        config.load(write(tmp_path, text))
    return caught.value.problems


def edit(change: Any) -> str:
    data = yaml.safe_load(VALID)
    change(data)
    return yaml.safe_dump(data)


def test_the_design_example_is_valid_with_variables_expanded(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, VALID))
    smsc = settings.smscs[0]
    rate = smsc.throughput
    assert (smsc.name, smsc.port, smsc.password, smsc.window, rate) == (
        "carrier-a", 2775, "secret", 10, 100.0)
    assert settings.accounts[0].token == "a-token-of-twenty-chars"
    assert (settings.http_listen_host, settings.http_listen_port) == ("127.0.0.1", 8080)
    assert "secret" not in repr(smsc) and "twenty" not in repr(settings.accounts[0])


def test_status_overrides_take_names_numbers_and_hex(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, edit(lambda d: d["smscs"][0].update(
        status_overrides={"ESME_RSYSERR": "fail", 69: "retry", "0x0400": "throttled"},
        throttle_policy="fixed"))))
    smsc = settings.smscs[0]
    assert dict(smsc.status_overrides) == {0x08: "fail", 69: "retry", 0x400: "throttled"}
    assert smsc.throttle_policy == "fixed"


def test_http_limits_have_defaults_and_take_values(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, VALID)).http == config.HttpSettings()
    settings = config.load(write(tmp_path, edit(lambda d: d["http"].update(
        idle_timeout=5, header_timeout="2.5", body_timeout=7, body_min_rate=0,
        max_connections=10, max_pipelined=2, auth_failures=3, auth_window=30))))
    assert settings.http == config.HttpSettings(5.0, 2.5, 7.0, 0.0, 10, 2, 3, 30.0)


def test_the_shipped_example_file_is_valid() -> None:
    example = Path(__file__).parents[2] / "config" / "smppd.example.yaml"
    assert config.load(example).smscs[0].name == "carrier-a"


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(colour="blue"), "smppd.yaml: colour: unknown key"),
    (lambda d: d["smscs"][0].update(windw=5), "smppd.yaml: smscs[0].windw: unknown key"),
    (lambda d: d["smscs"][0].update(port="many"),
     "smppd.yaml: smscs[0].port: expected a whole number, got a string 'many'"),
    (lambda d: d["smscs"][0].update(port=70000), "smppd.yaml: smscs[0].port: expected 1..65535"),
    (lambda d: d["smscs"][0].update(window=True), "smppd.yaml: smscs[0].window: expected a whole"),
    (lambda d: d["smscs"][0].update(releases_per_second=0),
     "smppd.yaml: smscs[0].releases_per_second: expected 1..1000, got 0"),
    (lambda d: d["smscs"][0].update(releases_per_second=1.5),  # slots must tile a second
     "smppd.yaml: smscs[0].releases_per_second: expected a whole number"),
    (lambda d: d["smscs"][0].update(bind="both"),
     "smppd.yaml: smscs[0].bind: expected one of transceiver, transmitter+receiver"),
    (lambda d: d["smscs"][0].pop("host"), "smppd.yaml: smscs[0].host: missing required value"),
    (lambda d: d.pop("database"), "smppd.yaml: database: missing required value"),
    (lambda d: d.update(smscs=[]), "smppd.yaml: smscs: expected a list with at least one"),
    (lambda d: d["smscs"].append(dict(d["smscs"][0])),
     "smppd.yaml: smscs[1].name: duplicate SMSC name 'carrier-a' (also smscs[0])"),
    (lambda d: d["accounts"].append({"name": "acme", "token": "another-long-token-1"}),
     "smppd.yaml: accounts[1].name: duplicate account name 'acme'"),
    (lambda d: d["accounts"][0].update(token="short"),
     "smppd.yaml: accounts[0].token: expected at least 16 characters"),
    (lambda d: d["http"].update(listen="localhost"), "smppd.yaml: http.listen: expected HOST:PORT"),
    (lambda d: d.update(database="mysql://x"), "smppd.yaml: database: expected a URL"),
    (lambda d: d.update(routes=[{"prefix": "+48", "smsc": "nobody"}]),
     "smppd.yaml: routes[0].smsc: no SMSC named 'nobody'"),
    (lambda d: d.update(routes=[{"prefix": "+48", "smscs": ["carrier-a", "ghost"]}]),
     "smppd.yaml: routes[0].smscs[1]: no SMSC named 'ghost'"),
    (lambda d: d.update(routes=[{"prefix": "+48", "smscs": []}]),
     "smppd.yaml: routes[0].smscs: expected a list of SMSC names"),
    (lambda d: d.update(routes=[{"prefix": "+48", "smsc": "carrier-a",
                                 "smscs": ["carrier-a"]}]),
     "smppd.yaml: routes[0].smsc: give either smsc: NAME or smscs: [NAME, ...]"),
    (lambda d: d["smscs"][0].update(tls={"ca_file": "/nonexistent/ca.pem"}),
     "smppd.yaml: smscs[0].tls.ca_file: cannot read '/nonexistent/ca.pem'"),
    (lambda d: d["smscs"][0].update(system_id="x" * 16),
     "smppd.yaml: smscs[0].system_id: expected at most 15 characters"),
    (lambda d: d["smscs"][0].update(throttle_policy="gentle"),
     "smppd.yaml: smscs[0].throttle_policy: expected one of adaptive, fixed"),
    (lambda d: d["smscs"][0].update(status_overrides={"ESME_RNOPE": "retry"}),
     "smppd.yaml: smscs[0].status_overrides.ESME_RNOPE: expected a command_status"),
    (lambda d: d["smscs"][0].update(status_overrides={"0x45": "later"}),
     "smppd.yaml: smscs[0].status_overrides.0x45: expected one of throttled, queue_full"),
    (lambda d: d["smscs"][0].update(status_overrides=["0x45"]),
     "smppd.yaml: smscs[0].status_overrides: expected a mapping of command_status"),
    (lambda d: d["http"].update(idle_timeout=0.5), "smppd.yaml: http.idle_timeout: expected "
                                                   "at least 1"),
    (lambda d: d["http"].update(header_timeout=".nan"),
     "smppd.yaml: http.header_timeout: expected a number, got"),
    (lambda d: d["http"].update(body_timeout=float("inf")),
     "smppd.yaml: http.body_timeout: expected a number, got"),
    (lambda d: d["http"].update(body_min_rate=-1), "smppd.yaml: http.body_min_rate: expected "
                                                   "at least 0"),
    (lambda d: d["http"].update(max_connections=0),
     "smppd.yaml: http.max_connections: expected 1..1000000"),
    (lambda d: d["http"].update(max_pipelined="lots"),
     "smppd.yaml: http.max_pipelined: expected a whole number"),
    (lambda d: d["http"].update(auth_failures=0),
     "smppd.yaml: http.auth_failures: expected 1..1000000"),
    (lambda d: d["http"].update(auth_window="soon"),
     "smppd.yaml: http.auth_window: expected a number"),
    (lambda d: d["http"].update(idle=5), "smppd.yaml: http.idle: unknown key"),
    (lambda d: d["http"].update(listen="127.0.0.1:８０"),
     "smppd.yaml: http.listen: expected HOST:PORT"),
    (lambda d: d.update(store={"stall_timout": 3}), "smppd.yaml: store.stall_timout: unknown key"),
    (lambda d: d.update(store={"connect_timeout": 0}),
     "smppd.yaml: store.connect_timeout: expected at least 0.1, got 0"),
    (lambda d: d.update(store={"keepalives_count": 2.5}),
     "smppd.yaml: store.keepalives_count: expected a whole number"),
    (lambda d: d.update(store=[1]), "smppd.yaml: store: expected a mapping"),
    (lambda d: d.update(throttle={"pause_base": 2, "pause_max": 1}),
     "smppd.yaml: throttle.pause_max: expected at least pause_base (2), got 1"),
    (lambda d: d.update(throttle={"floor": 0}),
     "smppd.yaml: throttle.floor: expected at least 0.001, got 0"),
    (lambda d: d.update(throttle={"recovery": 1}), "smppd.yaml: throttle.recovery: unknown"),
])
def test_each_mistake_names_file_key_and_expectation(tmp_path: Path, change: Any,
                                                     expected: str) -> None:
    found = problems(tmp_path, edit(change))
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path}/{expected}"), found


def test_throttle_pacing_default_and_read(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, VALID)).throttle == Pacing()
    settings = config.load(write(tmp_path, edit(lambda d: d.update(throttle={
        "pause_base": 0.5, "pause_max": 30, "recovery_interval": 0.25, "floor": 5}))))
    assert settings.throttle == Pacing(0.5, 30.0, 0.25, 5.0)


def test_store_limits_default_and_read(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, VALID)).store == StoreLimits()
    settings = config.load(write(tmp_path, edit(lambda d: d.update(store={
        "connect_timeout": 2, "statement_timeout": 1.5, "stall_timeout": 4,
        "keepalives_idle": 7}))))
    assert settings.store == StoreLimits(connect_timeout=2.0, statement_timeout=1.5,
                                         stall_timeout=4.0, keepalives_idle=7)
    assert settings.store.answer_timeout == 2.5


def test_where_the_writers_transactions_run(tmp_path: Path) -> None:
    """store.writer: auto (a process on SQLite, the thread on PostgreSQL), process or
    thread; anything else is refused, naming the key and the choices."""
    default = config.load(write(tmp_path, VALID)).store
    assert default.writer == "auto"
    assert default.writer_process("sqlite") and not default.writer_process("postgresql")
    for chosen, sqlite, postgresql in (("process", True, True), ("thread", False, False)):
        store = config.load(write(tmp_path, edit(lambda d, w=chosen: d.update(
            store={"writer": w})))).store
        assert (store.writer_process("sqlite"), store.writer_process("postgresql")) == (
            sqlite, postgresql)
    assert problems(tmp_path, edit(lambda d: d.update(store={"writer": "fork"}))) == [
        f"{tmp_path / 'smppd.yaml'}: store.writer: expected one of auto, process, thread, "
        "got 'fork'"]


def test_a_missing_environment_variable_is_named(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARRIER_A_PASSWORD")
    assert problems(tmp_path, VALID) == [
        f"{tmp_path / 'smppd.yaml'}: smscs[0].password: environment variable "
        "CARRIER_A_PASSWORD is not set"]


def test_variables_can_fill_numbers_and_have_defaults(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSC_PORT", "2800")
    text = VALID.replace("port: 2775", "port: ${SMSC_PORT}").replace(
        "window: 10", "window: ${SMSC_WINDOW:-25}")
    smsc = config.load(write(tmp_path, text)).smscs[0]
    assert (smsc.port, smsc.window) == (2800, 25)


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["smscs"][0]["port"] = "x"
        d["accounts"][0]["balance"] = -1
        d["colour"] = 1

    assert len(problems(tmp_path, edit(change))) == 3


@pytest.mark.parametrize(("text", "expected"), [
    ("smscs: [\n  - name: a\n", "invalid YAML"),
    ("", "the file is empty"),
    ("- just\n- a list\n", "(top level): expected a mapping, got a list"),
])
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(tmp_path, text)[0]


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(tmp_path / "absent.yaml")
    assert "cannot read" in str(caught.value)


def test_check_config_prints_the_same_lines_and_exits_78(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, edit(lambda d: d["smscs"][0].update(window="wide")))
    assert cli.main(["check-config", "--config", str(path)]) == config.EXIT_CONFIG == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{path}: smscs[0].window: expected a whole number, got a string 'wide'"]
    good = write(tmp_path, VALID)
    assert cli.main(["check-config", "--config", str(good)]) == 0
    assert "OK" in capsys.readouterr().out


def test_run_with_a_bad_config_exits_78_without_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, edit(lambda d: d.pop("smscs")))
    assert cli.main(["run", "--config", str(path)]) == config.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "smscs: missing required value" in err and "Traceback" not in err


def test_cluster_leases_default_and_read(tmp_path: Path) -> None:
    """`cluster:` (issue 14): the lease and the heartbeat, the heartbeat at most half
    the lease (else a live instance could look dead between two beats)."""
    assert config.load(write(tmp_path, VALID)).cluster == config.ClusterSettings()
    settings = config.load(write(tmp_path, edit(lambda d: d.update(cluster={
        "lease": 5, "heartbeat": 0.5}))))
    assert settings.cluster == config.ClusterSettings(5.0, 0.5)
    found = problems(tmp_path, edit(lambda d: d.update(cluster={"lease": 2, "heartbeat": 3,
                                                                "leases": 1})))
    assert any("cluster.heartbeat: expected at most half of cluster.lease" in p for p in found)
    assert any("cluster.leases: unknown key" in p for p in found)
