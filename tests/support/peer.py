"""Watching the fake SMSC from a test without changing it: what one connection
received, in order, and when each submit_sm arrived."""

from __future__ import annotations

from typing import Any


def record_commands(connection: Any, *commands: str) -> list[str]:
    """The given commands as `connection` (an SmscProtocol) receives them, in order,
    from now on; the SMSC still handles each as before."""
    seen: list[str] = []
    for command in commands:
        handler = getattr(connection, "on_" + command)

        def watched(pdu: Any, handler: Any = handler, command: str = command) -> None:
            seen.append(command)
            handler(pdu)

        setattr(connection, "on_" + command, watched)
    return seen


def record_submit_times(smsc: Any) -> list[float]:
    """When each submit_sm reached the fake SMSC (its reactor's clock), from now on."""
    times: list[float] = []
    handle = smsc.handle_submit

    def timed(connection: Any, pdu: Any) -> None:
        times.append(smsc.reactor.seconds())
        handle(connection, pdu)

    smsc.handle_submit = timed
    return times
