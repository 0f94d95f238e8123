"""TLS to an SMSC fails fast and says why; nothing (above all no bind with its
password) reaches a peer whose certificate is for another name; a handshake or a
connection set-up that never finishes does not hold the link."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from smppd.fake_smsc import FakeSmsc

from smppd.protocol import tls as tls_module
from smppd.protocol.connector import LinkState, ReconnectPolicy, TlsConfig
from smppd.protocol.tls import ClientTls, TlsError
from tests.conftest import call, wait_for
from tests.protocol.test_inbound_tls_bulk_tcp import tls_smsc  # noqa: F401  (fixture)


def _received_pdus(smsc: FakeSmsc) -> int:
    return call(lambda: len(smsc.received) + len(smsc.undecodable) + len(smsc.binds))


def test_wrong_name_fails_at_the_handshake_and_never_sends_the_bind(  # type: ignore[no-untyped-def]
        smsc: FakeSmsc, connect, tls_smsc, caplog) -> None:  # noqa: F811
    port, ca_file = tls_smsc
    caplog.set_level(logging.WARNING, "smppd.connector")
    connector, listener = connect(port=port, tls=TlsConfig(ca_file, "other.test"),
                                  wait_bound=False)
    link = connector.links[0]
    wait_for(lambda: link.last_bind_error is not None, what="the TLS failure reported")
    assert "not valid for 'other.test'" in link.last_bind_error
    assert "smsc.test" in link.last_bind_error  # the name the certificate does carry
    # Reported as a name mismatch, not by the bind or handshake timeout.
    assert "within" not in link.last_bind_error
    assert listener.bound_count == 0 and _received_pdus(smsc) == 0
    assert any("not valid for 'other.test'" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_untrusted_certificate_fails_with_a_clear_reason(  # type: ignore[no-untyped-def]
        smsc: FakeSmsc, connect, tls_smsc) -> None:  # noqa: F811
    port, _ca_file = tls_smsc
    connector, _listener = connect(port=port, tls=TlsConfig(None, "smsc.test"), wait_bound=False)
    link = connector.links[0]
    wait_for(lambda: link.last_bind_error is not None, what="the TLS failure reported")
    assert link.last_bind_error.startswith("TLS handshake failed: certificate verify failed")
    assert "tls.ca_file" in link.last_bind_error
    assert _received_pdus(smsc) == 0


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP and never says a word: a TLS handshake to it cannot finish."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    server.close()


def test_a_handshake_that_never_finishes_is_given_up(connect, silent_server: int,  # type: ignore[no-untyped-def]
                                                     tmp_path: Any) -> None:
    connector, _listener = connect(port=silent_server, tls=TlsConfig(None, "smsc.test"),
                                   wait_bound=False, bind_timeout=0.3)
    link = connector.links[0]
    wait_for(lambda: link.connect_attempts >= 2, what="a retry after the handshake timeout")
    assert link.last_bind_error == "TLS handshake not completed within 0.3 s"


def test_a_connection_set_up_that_raises_does_not_hang_the_link(  # type: ignore[no-untyped-def]
        connect, tls_smsc, monkeypatch) -> None:  # noqa: F811
    """What MemoryDenyWriteExecute did to pyOpenSSL's callbacks: an exception inside
    Twisted's TLS layer, where no Deferred reports it. The link must try again."""
    port, ca_file = tls_smsc

    def refuse(self: ClientTls, protocol: Any) -> Any:
        raise MemoryError("Cannot allocate write+execute memory for ffi.callback()")

    monkeypatch.setattr(ClientTls, "clientConnectionForTLS", refuse)
    policy = ReconnectPolicy(initial=0.05, maximum=0.2, connect_timeout=0.3, setup_grace=0.2)
    connector, _listener = connect(port=port, tls=TlsConfig(ca_file, "smsc.test"),
                                   reconnect=policy, wait_bound=False)
    link = connector.links[0]
    wait_for(lambda: link.connect_attempts >= 2, what="another attempt after the failure")
    assert link.state is not LinkState.BOUND
    assert link.last_bind_error == "connection set-up did not complete in 0.5 s"
    # Stop it within the test: its failures are logged by Twisted as they happen, and
    # must not land in the next test's output.
    call(connector.abort)
    call(lambda: None)


def test_stop_during_the_handshake_completes(connect, silent_server: int) -> None:  # type: ignore[no-untyped-def]
    connector, _listener = connect(port=silent_server, tls=TlsConfig(None, "smsc.test"),
                                   wait_bound=False)
    link = connector.links[0]
    wait_for(lambda: link.state is LinkState.BINDING, what="TCP connected, handshake pending")
    call(connector.stop)  # returns only once the link has let go
    assert link.state is LinkState.STOPPED


def test_unreadable_ca_file_is_a_clear_error(tmp_path: Any) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TlsError, match="cannot load the CA file"):
        ClientTls("smsc.test", str(bad))
    with pytest.raises(TlsError, match="cannot load the CA file"):
        ClientTls("smsc.test", str(tmp_path / "missing.pem"))


def test_no_python_callbacks_are_installed(tmp_path: Any, tls_smsc) -> None:  # noqa: F811
    """The point of ClientTls: nothing that needs ffi.callback (write+execute memory)."""
    _port, ca_file = tls_smsc
    creator = ClientTls("smsc.test", ca_file)
    connection = creator.clientConnectionForTLS(None)
    assert creator.context._verify_callback is None
    assert getattr(creator.context, "_info_callback", None) is None
    assert getattr(creator.context, "_alpn_select_callback", None) is None
    assert connection._verify_callback is None
    assert tls_module.describe_failure(None, False) is None


def test_stopping_a_link_mid_attempt_leaves_no_timer_behind(  # type: ignore[no-untyped-def]
        connect, tls_smsc, monkeypatch) -> None:  # noqa: F811
    from twisted.internet import reactor

    port, ca_file = tls_smsc
    monkeypatch.setattr(ClientTls, "clientConnectionForTLS", lambda self, protocol: 1 / 0)
    connector, _listener = connect(port=port, tls=TlsConfig(ca_file, "smsc.test"),
                                   wait_bound=False)
    link = connector.links[0]
    wait_for(lambda: link._connecting is not None, what="an attempt hanging in set-up")
    call(connector.stop)
    assert link.state is LinkState.STOPPED and link._connecting is None
    assert link._setup_call is None
    assert not [c for c in call(reactor.getDelayedCalls)
                if getattr(c.func, "__self__", None) is link]
