"""S3 that Spark cannot reach in silver is named: the service, the endpoint, the setting
``s3.endpoint_url`` and the fix, with Spark's own error chained.

Real Py4J errors come from the session's Spark reading ``s3a://`` buckets of their own
(throwaway names) whose endpoint (Hadoop's per-bucket ``fs.s3a.bucket.<b>.endpoint``)
is a closed loopback port: no JVM of their own, and no other bucket is affected.
"""

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from botocore.exceptions import EndpointConnectionError
from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from lakehouse_assets.bronze.assets import build_bronze_asset, landing_run_config
from lakehouse_assets.silver.errors import connection_failure, s3_errors_named
from lakehouse_dev.stack import LocalStack
from resources.environments import s3_resource
from resources.errors import ServiceUnreachableError
from resources.s3.client import S3Resource
from resources.s3.parquet_store import ParquetStore, S3ParquetIOManager
from tests.integration.conftest import failure_message
from tests.integration.test_silver import (
    _at,
    _dataset_settings,
    _day,
    _make_dataset,
    plain_event,
)

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unreachable(bucket: str, port: int) -> dict[str, str]:
    """Hadoop settings that send S3A requests for ``bucket`` to a closed loopback port,
    without the SDK's and S3A's retries (a refused connection fails at once)."""
    prefix = f"fs.s3a.bucket.{bucket}"
    return {
        f"{prefix}.endpoint": f"http://127.0.0.1:{port}",
        f"{prefix}.attempts.maximum": "1",
        f"{prefix}.retry.limit": "1",
    }


@pytest.fixture
def bucket() -> str:
    return f"unreachable-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unreachable_in_session(spark: SparkSession, bucket: str) -> Iterator[int]:
    """The session's S3A requests for ``bucket`` go to a closed port, for one test."""
    port = _closed_port()
    settings = _unreachable(bucket, port)
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield port
    finally:
        for key in settings:
            spark.conf.unset(key)


def test_a_refused_connection_in_spark_is_named(spark: SparkSession, bucket: str) -> None:
    port = _closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = S3Resource(endpoint_url=endpoint, bucket=bucket)
    read = spark.read.options(**_unreachable(bucket, port))
    with pytest.raises(ServiceUnreachableError) as raised, s3_errors_named(s3):
        read.parquet(f"s3a://{bucket}/bronze/plain/date=2026-11-10/x+0+0-1.parquet")
    error = raised.value
    message = str(error)
    assert error.service == "S3"
    assert error.address == endpoint
    assert error.setting == "s3.endpoint_url"
    assert f"S3 at {endpoint} is unreachable" in message
    assert f"Connect to 127.0.0.1:{port}" in message
    assert "Connection refused" in message
    assert "`s3.endpoint_url`" in message
    assert "make stack-start" in message  # the fix
    assert isinstance(error.__cause__, Py4JJavaError)
    assert "java.net.ConnectException" in str(error.__cause__)


def test_other_spark_errors_pass_unchanged(spark: SparkSession, resources: Any) -> None:
    """A missing file on a reachable S3 is not an unreachable S3."""
    missing = f"s3a://{resources.s3.bucket}/no-such-prefix-{uuid.uuid4().hex}/x.parquet"
    with pytest.raises(AnalysisException, match="PATH_NOT_FOUND"), s3_errors_named(resources.s3):
        spark.read.parquet(missing)


def test_botocore_connection_errors_are_named_and_named_errors_kept() -> None:
    """What the bronze listing (s3fs, botocore) raises for a refused connection."""
    s3 = S3Resource(endpoint_url="http://127.0.0.1:9", bucket="lakehouse")
    refused = EndpointConnectionError(endpoint_url="http://127.0.0.1:9/lakehouse?list-type=2")
    named_s3 = r"S3 at http://127\.0\.0\.1:9 "
    with pytest.raises(ServiceUnreachableError, match=named_s3) as raised, s3_errors_named(s3):
        raise refused
    assert raised.value.__cause__ is refused
    named = ServiceUnreachableError("S3", "somewhere", "s3.endpoint_url", "already named")
    with pytest.raises(ServiceUnreachableError) as kept, s3_errors_named(s3):
        raise named
    assert kept.value is named
    # A task's failure that reached the driver as text only: named when it is S3A's.
    text_only = RuntimeError(
        "Job aborted: Lost task 0.0: org.apache.hadoop.fs.s3a.AWSClientIOException: getFileStatus"
        " on s3a://lakehouse/x.parquet\nCaused by: java.net.ConnectException: Connection refused"
    )
    assert (
        connection_failure(text_only) == "Caused by: java.net.ConnectException: Connection refused"
    )
    assert connection_failure(ValueError("Connection refused")) is None


def test_silver_names_s3_when_spark_cannot_reach_it(
    stack: LocalStack,
    resources: Any,
    bucket: str,
    unreachable_in_session: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A silver run whose bronze files Spark cannot fetch fails with the named error."""
    plain = _make_dataset("contracts/plain.yaml")
    resources.s3.client().create_bucket(Bucket=bucket)
    # Bronze of this dataset in the bucket of its own; Spark and the catalog unchanged.
    monkeypatch.setenv("LAKEHOUSE__STORAGE__BUCKET", bucket)
    settings = _dataset_settings(
        plain.name, plain.topic, "contracts/plain.yaml", plain.settings.namespace("silver")
    )
    store = ParquetStore(s3=s3_resource(settings), prefix=settings.storage.bronze_prefix)
    plain.resources = {
        **plain.resources,
        "bronze_store": store,
        "bronze_io_manager": S3ParquetIOManager(store=store),
    }
    plain.produce([(plain_event("a", _at(0, 9)), _at(0, 9))])
    dg.materialize(
        [build_bronze_asset(plain.settings, plain.name)],
        resources=plain.resources,
        run_config=landing_run_config(plain.name, "replace"),
        partition_key=_day(0),
    )

    result = plain.silver(_day(0))
    assert not result.success
    message = failure_message(result)
    endpoint = settings.s3.endpoint_url
    assert f"ServiceUnreachableError: S3 at {endpoint} is unreachable" in message
    assert f"Connect to 127.0.0.1:{unreachable_in_session}" in message
    assert "`s3.endpoint_url`" in message
    assert "make stack-start" in message
    assert "Py4JJavaError" in message  # the cause, chained
