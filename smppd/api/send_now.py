"""Writes an HTTP answer straight to the socket when nothing is queued before it.

Why by hand: Twisted's `transport.write` only queues. The bytes leave on a later
reactor turn: the socket is registered for writability (an epoll_ctl), epoll reports
it, `doWrite` sends, and the socket is unregistered (another epoll_ctl). An API
answer is a few hundred bytes for a socket whose send buffer is empty, so one
`send()` now does the same work in one system call instead of three and a turn of
the loop (at full speed that is one answer per connection per turn, 50 connections
at a time). Twisted offers no such path, so this is the smallest one that keeps its
guarantees:

- only plain TCP transports (TLS has its own buffer inside the protocol);
- only while the transport holds nothing unsent, so bytes never overtake others;
- whatever the kernel does not take at once (a full send buffer, an error) goes to
  `transport.write` as before, which buffers it, pauses the producer and reports a
  lost connection the usual way.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

# Twisted's buffer and state attributes read here (`_aborting`: an aborted connection
# stays `connected` until its connectionLost on the next turn). A Twisted without them
# gets the plain path; tests/api/test_send_now.py checks they exist, so an upgrade
# that renames them is seen.
_BUFFERS = ("dataBuffer", "_tempDataBuffer", "_writeDisconnected", "_aborting")


def write(transport: Any, data: bytes) -> None:
    """`transport.write(data)`, sending at once what the socket takes."""
    if data and direct(transport):
        try:
            sent = transport.socket.send(data)
        except OSError:  # EAGAIN, or a failing connection: Twisted's path sorts it out
            sent = 0
        if sent >= len(data):
            return
        data = data[sent:]
    transport.write(data)


def direct(transport: Any) -> bool:
    """Whether `transport` is a plain TCP connection with nothing left to send."""
    if not isinstance(transport, tcp.Connection) or transport.TLS:
        return False
    try:
        return bool(transport.connected and not transport.disconnecting
                and not transport.disconnected and not transport._aborting
                and not transport._writeDisconnected
                and not transport.dataBuffer and not transport._tempDataBuffer)
    except AttributeError:
        return False
