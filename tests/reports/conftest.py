"""The report tests' shared history (reports_world.World), made once per backend for
the whole package: every type × format, the inbound and poll reports and the
options of the detailed ones read the same daemon's data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import call
from tests.reports.reports_world import (
    POSTGRES_URL,
    World,
    database_url,
    make_smsc,
    start,
    stop_smsc,
)


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def world(request: Any, tmp_path_factory: Any, reactor_running: Any) -> Iterator[World]:
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip("PostgreSQL report tests need SMPPD_TEST_POSTGRES_URL "
                    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    smsc = make_smsc()
    folder = tmp_path_factory.mktemp(f"reports-{request.param}")
    daemon = start(database_url(request.param, folder), smsc.port, inbound=True)
    found = World(daemon, smsc)
    try:
        found.populate()
        found.populate_inbound()
        yield found
    finally:
        found.close()
        call(daemon.stop, drain_timeout=2.0)
        stop_smsc(smsc)
