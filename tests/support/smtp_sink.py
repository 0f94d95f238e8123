"""A real SMTP server for tests (aiosmtpd) on 127.0.0.1 and an ephemeral port, in
its own asyncio thread; it keeps what it receives. aiosmtpd's Controller cannot
take port 0 (it connects to itself to check it started), so the server is made
with asyncio directly."""

from __future__ import annotations

import asyncio
import email
import threading
from email.message import Message
from typing import Any

from aiosmtpd.smtp import SMTP


class SmtpSink:
    def __init__(self, answer: str = "250 OK") -> None:
        self.answer = answer  # e.g. "451 try later" or "550 no such user"
        self.messages: list[Message] = []
        self.envelopes: list[Any] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="smtp-sink",
                                       daemon=True)
        self.server: Any = None
        self.port = 0

    def start(self) -> SmtpSink:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self.loop.create_server(
            lambda: SMTP(self, hostname="sink.test"), "127.0.0.1", 0), self.loop)
        self.server = future.result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer.startswith("250"):
            self.envelopes.append(envelope)
            self.messages.append(email.message_from_bytes(envelope.content))
        return self.answer

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
