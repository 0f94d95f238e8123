"""TLS to an SMSC without any OpenSSL callback into Python.

Why not twisted.internet.ssl.optionsForClientTLS: its context installs an ALPN
select callback and every connection a verify callback (the host name check).
pyOpenSSL makes those with cffi's ffi.callback(), which needs memory that is
writable and executable; systemd's MemoryDenyWriteExecute=yes (and the kernel's
PR_SET_MDWE behind it) refuses that, so the connection setup raised MemoryError
inside Twisted and the link hung in "connecting".

Here OpenSSL verifies the chain by itself (VERIFY_PEER, no callback), and the
name is checked by service_identity right after the handshake, before the
session sends its bind: a certificate for another host never sees the password.

The same holds for the webhooks' https (smppd.callbacks.client, through
`HttpsPolicy`): Twisted's BrowserLikePolicyForHTTPS is optionsForClientTLS
underneath, so under the unit every https delivery failed with MemoryError. There
the request waits for the name check as the bind does.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer


class TlsError(Exception):
    """The TLS set-up or the peer's identity is wrong; the message says which."""


def client_context(ca_file: str | None = None) -> SSL.Context:
    """A client context that trusts `ca_file` (PEM) or the system's store, with no
    callback into Python. Raises TlsError when the trust cannot be loaded."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION)
    context.set_verify(SSL.VERIFY_PEER)  # no callback: OpenSSL's own chain check
    try:
        if ca_file:
            context.load_verify_locations(ca_file)
        else:
            context.set_default_verify_paths()
    except SSL.Error as exc:
        where = f"the CA file {ca_file!r}" if ca_file else "the system's trust store"
        raise TlsError(f"cannot load {where}: {_openssl_reason(exc)}") from None
    return context


@implementer(IOpenSSLClientConnectionCreator)
class ClientTls:
    """Connections to one peer (an SMSC; a webhook's host): trust `ca_file` (PEM) or
    the system's store, and expect a certificate for `server_name`, a DNS name or an
    IP address. `context`: one shared by several peers (HttpsPolicy); `peer`: what
    the errors call it."""

    def __init__(self, server_name: str, ca_file: str | None = None, *,
                 context: SSL.Context | None = None, peer: str = "the SMSC") -> None:
        self.server_name = server_name
        self.ca_file = ca_file
        self.peer = peer
        self._is_address = isIPAddress(server_name) or isIPv6Address(server_name)
        self.context = context if context is not None else client_context(ca_file)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        if not self._is_address:  # SNI carries names only (RFC 6066)
            connection.set_tlsext_host_name(self.server_name.encode("idna"))
        connection.set_connect_state()
        return connection

    def verify_peer(self, connection: SSL.Connection) -> None:
        """After the handshake: the chain was verified, now the name. Raises TlsError."""
        certificate = connection.get_peer_certificate(as_cryptography=True)
        if certificate is None:
            raise TlsError(f"TLS: {self.peer} sent no certificate")
        try:
            if self._is_address:
                verify_certificate_ip_address(certificate, self.server_name)
            else:
                verify_certificate_hostname(certificate, self.server_name)
        except (VerificationError, CertificateError):
            hint = "; set tls.server_name to a name it was issued for" \
                if self.peer == "the SMSC" else ""
            raise TlsError(f"TLS: {self.peer}'s certificate is not valid for "
                           f"{self.server_name!r} (it names {_names(certificate)}){hint}"
                           ) from None


class HttpsPolicy:
    """What Twisted's HTTPS endpoints ask of a TLS policy (`creatorForNetloc`), for
    the webhooks' client: one context for every host (the trust is loaded once), a
    ClientTls per host. The caller checks the name with `verify_peer` once the
    handshake is done, before it sends anything."""

    def __init__(self, ca_file: str | None = None) -> None:
        self.context = client_context(ca_file)
        self.ca_file = ca_file

    def creatorForNetloc(self, hostname: bytes, port: int) -> ClientTls:
        return ClientTls(hostname.decode("ascii"), self.ca_file, context=self.context,
                         peer="the endpoint")


def describe_failure(reason: Failure | None, handshake_done: bool) -> str | None:
    """A one-line account of a TLS failure for the log, or None when it was not one."""
    if reason is None or not reason.check(SSL.Error):
        return None
    detail = _openssl_reason(reason.value)
    if handshake_done:
        return f"TLS error: {detail}"
    hint = ""
    if "certificate verify failed" in detail:
        hint = " (the SMSC's certificate does not chain to the trusted CAs: check tls.ca_file)"
    return f"TLS handshake failed: {detail}{hint}"


def _openssl_reason(error: Exception) -> str:
    """pyOpenSSL errors carry [(library, function, reason), ...]: keep the reasons."""
    reasons = [entry[-1] for entry in (error.args[0] if error.args else [])
               if isinstance(entry, tuple) and entry and entry[-1]]
    return "; ".join(reasons) or str(error) or type(error).__name__


def _names(certificate: x509.Certificate) -> str:
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no subjectAltName"
    found = [str(value) for value in (*names.get_values_for_type(x509.DNSName),
                                      *names.get_values_for_type(x509.IPAddress))]
    return ", ".join(found) or "no DNS name or address"
