"""Test harness: one local stack (Kafka, S3 server, catalog, PostgreSQL) and one Spark
session per run.

The test run gets its own data directory and free loopback ports, set through the
same ``LAKEHOUSE__...`` overrides a user would use, so a developer's running
demo stack is never touched and every setting is derived exactly as in production
code. The variables are set at import, before any test module loads the settings.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest


def _free_port_pair() -> int:
    """A free port whose successor is free too (the broker's controller listener)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 65535:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two adjacent free loopback ports")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# pyspark's collect() returns naive datetimes in the process's local zone: make it UTC.
os.environ["TZ"] = "UTC"
time.tzset()

TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="lakehouse-test-"))
os.environ.update(
    {
        "LAKEHOUSE_ENV": "local",
        "LAKEHOUSE__STACK__DATA_DIR": str(TEST_DATA_DIR),
        "LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port_pair()}",
        "LAKEHOUSE__S3__ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}",
        # HTTP sources are served by the tests that need them (test_http_landing.py): the
        # weather dataset points at a free port of its own, which is not the stack's weather
        # API port, so no stack of the session starts one, nor reads a developer's.
        "LAKEHOUSE__STACK__WEATHER_PORT": str(_free_port()),
        "LAKEHOUSE__DATASETS__WEATHER__HTTP__URL": f"http://127.0.0.1:{_free_port()}/v1/archive",
        "LAKEHOUSE__STACK__POSTGRES_PORT": str(_free_port()),
        "DAGSTER_HOME": str(TEST_DATA_DIR / "dagster_home"),
    }
)
(TEST_DATA_DIR / "dagster_home").mkdir()

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse_dev.stack import LocalStack
    from resources.settings import LakehouseSettings


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TEST_DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def settings() -> LakehouseSettings:
    from resources.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: LakehouseSettings) -> Iterator[LocalStack]:
    """The local stack, started once for the whole run and stopped at its end."""
    from lakehouse_dev.stack import LocalStack

    local = LocalStack.from_settings(settings)
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def resources(settings: LakehouseSettings, stack: LocalStack) -> Iterator[Any]:
    """The resources that the Definitions bind, initialised as in a run (env vars resolved)."""
    import dagster as dg

    from resources.environments import build_resources

    with dg.build_resources(build_resources(settings)) as initialised:
        yield initialised


@pytest.fixture(scope="session")
def spark(resources: Any) -> Iterator[SparkSession]:
    """One Spark session for the run (local mode, Iceberg catalog as default catalog)."""
    session = resources.spark.spark_session
    yield session
    session.stop()
