"""Operators' checks reuse the daemon and TLS fixtures."""

from tests.daemon.conftest import start_daemon  # noqa: F401
