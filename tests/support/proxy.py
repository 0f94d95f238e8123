"""A TCP proxy of the tests' own, between the daemon and its PostgreSQL, that can
fail the ways a network does.

- `silent()`: the sockets stay open but nothing is forwarded either way, and new
  connections are accepted but never answered: a server behind dropped packets or
  a hung middlebox. Nothing is refused, so only the daemon's own deadlines end its
  waits (the proxy's kernel still acknowledges every byte, so TCP keepalive and
  tcp_user_timeout do not fire here; they cover the real packet loss).
- `down()`: every connection is closed and new ones are closed at once.
- `resume()`: forward again; held connections carry on where they stopped.

It runs on its own thread with `selectors`, not on the tests' reactor: a proxy that
shared the daemon's reactor would stop with it and hide the very stall under test.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Any

_FORWARD, _SILENT, _DOWN = "forward", "silent", "down"


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = _FORWARD
        self.connections = 0  # accepted so far
        # Two selectors: while silent only the listener is watched, so unread data
        # waiting on a socket does not spin the loop.
        self._accepts = selectors.DefaultSelector()
        self._selector = selectors.DefaultSelector()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self._accepts.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def url_for(self, url: str) -> str:
        """The PostgreSQL URL `url` with its host and port replaced by the proxy's."""
        from sqlalchemy.engine import make_url

        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False)

    def silent(self) -> None:
        with self._lock:
            self.mode = _SILENT

    def down(self) -> None:
        with self._lock:
            self.mode = _DOWN
            self._close_all()

    def resume(self) -> None:
        with self._lock:
            self.mode = _FORWARD

    def close(self) -> None:
        with self._lock:
            self._running = False
            self._close_all()
        self._thread.join(5)
        self._selector.close()
        self._accepts.close()
        self._listener.close()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._peers) // 2

    # The proxy thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._running:
                    return
                forwarding = self.mode == _FORWARD
            if self._accepts.select(timeout=0 if forwarding else 0.02):
                with self._lock:
                    self._accept()
            if not forwarding:
                continue
            for key, _ in self._selector.select(timeout=0.02):
                with self._lock:
                    if self.mode == _FORWARD:
                        self._forward(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.connections += 1
        if self.mode == _DOWN:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
        self._peers[client], self._peers[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ, None)
        self._selector.register(upstream, selectors.EVENT_READ, None)

    def _forward(self, source: socket.socket) -> None:
        target = self._peers.get(source)
        if target is None:
            return
        try:
            data = source.recv(65536)
            if data:
                target.setblocking(True)
                target.sendall(data)
                target.setblocking(False)
                return
        except OSError:
            pass
        self._close_pair(source)

    def _close_pair(self, sock: socket.socket) -> None:
        other = self._peers.pop(sock, None)
        for each in (sock, other):
            if each is None:
                continue
            self._peers.pop(each, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(each)
            each.close()

    def _close_all(self) -> None:
        for sock in list(self._peers):
            self._close_pair(sock)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
