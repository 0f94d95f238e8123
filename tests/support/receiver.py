"""A customer's callback receiver for tests: a real HTTP server on 127.0.0.1 in its
own thread (not on the daemon's reactor), recording every request, verifying its
Standard Webhooks signature when given the key, and able to answer an error, answer
slowly, or go down and come back on the same port."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


def raw_signature(secret: str, event_id: str, timestamp: str, body: bytes) -> str:
    """The signature computed by hand (no library), as any language would."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


class _Server(ThreadingHTTPServer):
    """Remembers its connections, so that going down also cuts the kept-alive ones."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) is not the test's failure

    def cut(self) -> None:
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """`status` is answered to every request (after `delay` seconds); with `secret`,
    a request that fails verification or comes outside `tolerance` seconds of its
    timestamp is refused with 400 and not recorded as accepted."""

    status: int = 200
    delay: float = 0.0
    secret: str | None = None
    tolerance: float = 300.0
    requests: list[Delivery] = field(default_factory=list)
    accepted: dict[str, Delivery] = field(default_factory=dict)  # by event id: deduped
    refused: list[tuple[Delivery, str]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self, tls: tuple[str, str] | None = None) -> Receiver:
        """`tls`: (certificate file, key file) to serve https."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                delivery = Delivery({k.lower(): v for k, v in self.headers.items()}, body,
                                    time.time())
                status, reason = receiver.judge(delivery)
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = reason.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def judge(self, delivery: Delivery) -> tuple[int, str]:
        with self.lock:
            self.requests.append(delivery)
            if self.secret is not None:
                problem = self.verify(delivery)
                if problem:
                    self.refused.append((delivery, problem))
                    return 400, problem
            if 200 <= self.status < 300:
                self.accepted.setdefault(delivery.id, delivery)
            return self.status, "refused on purpose" if self.status >= 300 else ""

    def verify(self, delivery: Delivery) -> str | None:
        try:
            Webhook(self.secret).verify(delivery.body, delivery.headers)
        except WebhookVerificationError as exc:
            return f"signature: {exc}"
        sent = int(delivery.headers["webhook-timestamp"])
        if abs(time.time() - sent) > self.tolerance:
            return "timestamp outside the tolerance: a replay"
        return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        """Down: no new connections, and the kept-alive ones are cut."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.cut()
            self._server = None

    def ids(self) -> list[str]:
        with self.lock:
            return [d.id for d in self.requests]


def self_signed(folder: Any) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by itself: (certificate file, key file)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "receiver.pem", folder / "receiver.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)
