"""A TLS bind, and a webhook over https, under the shipped unit's memory restrictions.

systemd/smppd.service sets MemoryDenyWriteExecute=yes. On Linux >= 6.3 the same
restriction is prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), which a process can
put on itself: the daemon here runs in a child that does so before anything else,
proves the restriction is in force (cffi cannot make a callback, and Twisted's own
optionsForClientTLS fails the way it failed under the unit), and then runs
`smppd run` against the fake SMSC over TLS, with a callback endpoint served over
https (its certificate trusted through callbacks.ca_file). The restriction is
inherited by the callbacks' worker process, which makes the https request.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.protocol.test_inbound_tls_bulk_tcp import tls_smsc  # noqa: F401  (fixture)
from tests.support.process import TOKEN, DaemonProcess, free_port
from tests.support.receiver import Receiver, self_signed

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1

_RESTRICT = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    print("prctl(PR_SET_MDWE) failed: " + os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(3)
"""

_LAUNCHER = _RESTRICT + """
import cffi
try:
    cffi.FFI().callback("int(int)", lambda x: x)
except MemoryError:
    pass
else:
    sys.exit("MDWE not in force: ffi.callback() worked")
from twisted.internet import ssl
try:
    ssl.optionsForClientTLS("smsc.test").clientConnectionForTLS(None)
except MemoryError as exc:
    print("MDWE in force: Twisted's optionsForClientTLS fails:", exc, flush=True)
else:
    sys.exit("MDWE not in force: optionsForClientTLS worked")
from smppd.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _mdwe_supported() -> str | None:
    probe = subprocess.run([sys.executable, "-c", _RESTRICT], capture_output=True, text=True,
                           timeout=60)
    if probe.returncode == 0:
        return None
    return (probe.stdout.strip() or probe.stderr.strip()) + " (needs Linux >= 6.3)"


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def test_tls_bind_submit_and_https_callback_under_memory_deny_write_execute(  # type: ignore[no-untyped-def]
        smsc: Any, tls_smsc, tmp_path: Path) -> None:  # noqa: F811
    unsupported = _mdwe_supported()
    if unsupported:
        print(f"\nskipped: {unsupported}")
        pytest.skip(f"the kernel lacks PR_SET_MDWE: {unsupported}")
    port, ca_file = tls_smsc
    http_port = free_port()
    receiver_cert, receiver_key = self_signed(tmp_path)
    receiver = Receiver().start(tls=(str(receiver_cert), str(receiver_key)))
    config = tmp_path / "smppd.yaml"
    config.write_text(f"""
database: sqlite:///{tmp_path / 'smppd.db'}
http:
  listen: 127.0.0.1:{http_port}
smscs:
  - name: carrier-tls
    host: 127.0.0.1
    port: {port}
    system_id: acme
    password: secret
    tls:
      ca_file: {ca_file}
      server_name: smsc.test
accounts:
  - name: acme
    token: {TOKEN}
    balance: 100
callbacks:
  ca_file: {receiver_cert}
  retry: {{initial: 0.2, max: 0.5}}
""")
    launcher = tmp_path / "mdwe_launcher.py"
    launcher.write_text(_LAUNCHER)
    daemon = DaemonProcess(config, http_port, launcher=[sys.executable, str(launcher)])
    try:
        daemon.start()  # returns once /readyz is 200: the TLS bind is up
        api = f"http://127.0.0.1:{http_port}/v1"
        status, _ = _post(f"{api}/callbacks", {
            "url": f"https://127.0.0.1:{receiver.port}/hook", "events": ["status"]})
        assert status == 201
        status, sent = _post(f"{api}/messages",
                             {"to": "+48500100200", "from": "Acme", "text": "over TLS"})
        assert status == 201
        wait_for(lambda: any(r.pdu.fields["short_message"] == b"over TLS" for r in smsc.submits),
                 timeout=30, what="the submit over TLS at the SMSC")
        wait_for(lambda: any(d.event["data"]["id"] == sent["id"]
                             for d in list(receiver.accepted.values())),
                 timeout=30, what="the message's status event over https")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        daemon.stop()
        receiver.stop()
    log = daemon.log.read_text()
    print("\n" + "\n".join(line for line in log.splitlines()
                           if "MDWE" in line or "bound as" in line or "ready" in line))
    assert "MDWE in force" in log
    assert "smsc=carrier-tls bound as transceiver" in log
    assert "MemoryError" not in log.split("MDWE in force", 1)[1]
