"""The service as systemd runs it: sd_notify over a real unix datagram socket
(READY, RELOADING with MONOTONIC_USEC then READY, STOPPING), `smppd reload` that
returns only when the reload is done, and the unit file's own checks."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smppd import config
from tests.support.process import DaemonProcess, free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "smppd.service"
DROP_IN = ROOT / "systemd" / "smppd.service.d" / "notify-reload.conf"


class NotifySocket:
    """What systemd listens on: one datagram per sd_notify() call."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="sdn", dir="/tmp")  # sun_path is 108 bytes
        self.path = os.path.join(self.folder, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout: float = 30.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def pending(self) -> dict[str, str] | None:
        """A datagram already queued, or None (no waiting)."""
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(4096).decode()
        except BlockingIOError:
            return None
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _reload(config_path: Path, pid: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smppd.cli", "reload", "--config",
                           str(config_path), "--pid", str(pid), "--timeout", "30"],
                          capture_output=True, text=True, timeout=60)


def test_sd_notify_ready_reload_and_stop(smsc: Any, tmp_path: Path,
                                         notify: NotifySocket) -> None:
    http_port = free_port()
    path = write_config(tmp_path, smsc.port, http_port)
    daemon = DaemonProcess(path, http_port)
    try:
        daemon.start(extra_env={"NOTIFY_SOCKET": notify.path})
        assert daemon.process is not None
        ready = notify.next()
        assert ready["READY"] == "1" and ready["STATUS"] == f"HTTP on port {http_port}"

        # A good reload: RELOADING=1 stamped after the signal, then READY=1, both
        # sent before `smppd reload` (systemd's ExecReload=) returns.
        before = _monotonic_usec()
        done = _reload(path, daemon.process.pid)
        assert (done.returncode, done.stdout.strip()) == (0, "configuration reloaded"), done
        reloading = notify.pending()
        assert reloading is not None and reloading["RELOADING"] == "1"
        assert before <= int(reloading["MONOTONIC_USEC"]) <= _monotonic_usec()
        again = notify.pending()
        assert again is not None and again["READY"] == "1"
        assert "configuration reloaded" in again["STATUS"]

        # A broken file: refused, the daemon stays READY on its running configuration.
        good = path.read_text()
        path.write_text(good.replace("window: 10", "window: many"))
        done = _reload(path, daemon.process.pid)
        assert done.returncode == config.EXIT_CONFIG
        assert "smscs[0].window: expected a whole number" in done.stderr
        assert notify.next()["RELOADING"] == "1"
        refused = notify.next()
        assert refused["READY"] == "1" and refused["STATUS"].startswith("reload refused")
        assert daemon.ready()

        path.write_text(good)
        daemon.signal(signal.SIGTERM)
        assert notify.next()["STOPPING"] == "1"
        assert daemon.wait(60) == 0
    finally:
        daemon.stop()


def test_reload_of_a_daemon_that_is_not_there(tmp_path: Path) -> None:
    path = write_config(tmp_path, 1, free_port())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    done = _reload(path, gone.pid)
    assert done.returncode == 1 and f"no process {gone.pid}: is smppd running?" in done.stderr


def test_a_config_error_exits_78_so_systemd_does_not_restart_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, 1, free_port())
    path.write_text(path.read_text().replace("window: 10", "window: 0123x"))
    done = subprocess.run([sys.executable, "-m", "smppd.cli", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78 and "smscs[0].window" in done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"^RestartPreventExitStatus=78$", UNIT.read_text(), re.M)


def _unit(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_unit_keeps_its_hardening_and_says_how_to_reload() -> None:
    unit = _unit(UNIT.read_text())
    assert unit["MemoryDenyWriteExecute"] == ["yes"]  # TLS works under it (test_tls_mdwe)
    assert unit["Type"] == ["notify"]
    assert unit["ExecReload"][0].startswith("/opt/smppd/bin/smppd reload --config ")
    assert "$MAINPID" in unit["ExecReload"][0]
    assert unit["ExecStart"] == ["/opt/smppd/bin/smppd run --config /etc/smppd/smppd.yaml"]
    assert "ExecStartPre" not in unit  # its failure would bypass RestartPreventExitStatus
    drop_in = _unit(DROP_IN.read_text())
    assert drop_in == {"Type": ["notify-reload"], "ReloadSignal": ["SIGHUP"], "ExecReload": [""]}


def _systemd_version() -> int | None:
    if shutil.which("systemd-analyze") is None:
        return None
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True)
    match = re.search(r"systemd (\d+)", out.stdout)
    return int(match.group(1)) if match else None


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    version = _systemd_version()
    if version is None:
        print("\nskipped: systemd-analyze is not installed")
        pytest.skip("systemd-analyze is not installed")
    smppd = shutil.which("smppd") or (Path(sys.executable).parent / "smppd")
    unit = tmp_path / "smppd.service"
    unit.write_text(UNIT.read_text().replace("/opt/smppd/bin/smppd", str(smppd)))
    checked = [unit]
    if version >= 253:
        drop_ins = tmp_path / "smppd.service.d"
        drop_ins.mkdir()
        shutil.copy(DROP_IN, drop_ins / DROP_IN.name)
    else:
        print(f"\nsystemd {version} < 253: Type=notify-reload (the drop-in) not verified here")
    done = subprocess.run(["systemd-analyze", "verify", *map(str, checked)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if "smppd.service" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
