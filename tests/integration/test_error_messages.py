"""Failures of a real broker or S3 server name the service, the key and the fix.

The session's broker and S3 server stay up: an S3 endpoint that is down is a
loopback port with nothing listening, and refused credentials come from an S3
server of this module's own that checks signatures (moto with authentication on).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.bronze.jobs import build_landing_job
from lakehouse_assets.bronze.sensors import build_arrivals_sensor
from lakehouse_dev.stack import LocalStack
from resources.environments import build_resources, s3_resource
from resources.errors import (
    BucketNotFoundError,
    CredentialsError,
    ReadStalledError,
    ServiceUnreachableError,
)
from resources.kafka.client import KafkaResource, TopicReader
from resources.s3.parquet_store import ParquetStore, S3ParquetIOManager
from resources.settings import load_settings
from tests.conftest import _free_port
from tests.integration.conftest import BronzeDataset, Record, failure_message

pytestmark = pytest.mark.integration

DAY = "2026-11-10"


def _events(count: int, start: int = 0) -> list[Record]:
    base = datetime.fromisoformat(DAY).replace(tzinfo=UTC) + timedelta(hours=1)
    return [
        (f"k{i}".encode(), json.dumps({"id": i}).encode(), base + timedelta(seconds=i), None)
        for i in range(start, start + count)
    ]


def _quick_kafka(dataset: BronzeDataset) -> KafkaResource:
    """The dataset's broker, with a read that gives up after 3 s instead of 30 s."""
    servers = dataset.settings.kafka.bootstrap_servers
    return KafkaResource(bootstrap_servers=servers, timeout_seconds=1.0, read_stall_seconds=3.0)


def _open_transaction(dataset: BronzeDataset, count: int) -> Any:
    """``count`` records on partition 0 in a transaction left open; returns its producer."""
    producer = dataset.resources["kafka"].producer(
        **{"transactional.id": f"test-open-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for key, value, stamp, _ in _events(count, start=1000):
        producer.produce(
            dataset.topic,
            key=key,
            value=value,
            partition=0,
            timestamp=int(stamp.timestamp() * 1000),
        )
    assert producer.flush(30) == 0
    return producer


# Kafka: a record that never arrives ----------------------------------------------------


def test_record_that_never_arrives_names_topic_partition_offset_and_what_to_check(
    bronze_dataset: BronzeDataset,
) -> None:
    bronze_dataset.produce(_events(5), partition=0)
    producer = _open_transaction(bronze_dataset, 3)  # offsets 5-7, not readable yet
    try:
        read: list[int] = []

        def read_range() -> None:
            with TopicReader(_quick_kafka(bronze_dataset), bronze_dataset.topic) as reader:
                for batch in reader.read(0, 0, 7):
                    read.extend(int(m.offset() or 0) for m in batch)

        with pytest.raises(ReadStalledError) as raised:
            read_range()
    finally:
        producer.abort_transaction(30)

    assert read == [0, 1, 2, 3, 4]
    message = str(raised.value)
    assert f"no record of {bronze_dataset.topic}[0] at offset 5 (reading up to 7)" in message
    assert "though Kafka at 127.0.0.1:" in message
    assert "answers" in message
    assert "the partition's readable end is offset 5" in message
    assert "producer transaction still open" in message
    assert "retention" in message
    assert "compaction" in message
    assert "re-running the partition is safe, landing is idempotent" in message
    assert isinstance(raised.value, TimeoutError)
    assert (raised.value.topic, raised.value.partition, raised.value.offset) == (
        bronze_dataset.topic,
        0,
        5,
    )


@pytest.mark.parametrize("size", ["one-shot upload", "multipart upload"])
def test_a_landing_write_stopped_by_kafka_leaves_nothing_that_counts_as_landed(
    size: str, resources: Any
) -> None:
    """Exactly-once: a file whose records stopped coming is never visible, in whole or part."""
    store: ParquetStore = resources.bronze_store
    dataset = f"t_{uuid.uuid4().hex[:8]}"
    name = f"test-{dataset}+0+0-99999.parquet"
    path = f"{store.partition_dir(dataset, DAY)}/{name}"
    # Above the 16 MiB upload block, the first part is uploaded before the stream fails.
    rows = 10 if size == "one-shot upload" else 20_000
    group = pa.table({"offset": pa.array(range(rows), pa.int64())}).append_column(
        "value", pa.array([os.urandom(1024) for _ in range(rows)], pa.binary())
    )
    stalled = ReadStalledError(dataset, 0, rows, f"no record of {dataset}[0] at offset {rows}")

    def row_groups() -> Iterator[pa.Table]:
        yield group
        raise stalled

    fs = store.filesystem()
    with pytest.raises(ReadStalledError) as raised:
        store.write_file(fs, path, group.schema, row_groups())

    assert raised.value is stalled  # Kafka's error, not one of the store
    assert store.landed(dataset, DAY) == []
    assert not fs.exists(path)
    bucket, key = path.split("/", 1)
    uploads = resources.s3.client().list_multipart_uploads(Bucket=bucket, Prefix=key)
    assert uploads.get("Uploads", []) == []


# S3 down: the landing and the arrivals sensor ------------------------------------------


@pytest.fixture
def closed_s3(monkeypatch: pytest.MonkeyPatch, bronze_dataset: BronzeDataset) -> dict[str, Any]:
    """The dataset's resources with the bronze store on a loopback port nothing listens on."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # one refused connection is enough
    environ = dict(os.environ)
    environ[f"LAKEHOUSE__DATASETS__{bronze_dataset.name.upper()}__TOPIC"] = bronze_dataset.topic
    environ["LAKEHOUSE__S3__ENDPOINT_URL"] = f"http://127.0.0.1:{_free_port()}"
    settings = load_settings("local", environ=environ)
    store = ParquetStore(s3=s3_resource(settings), prefix=settings.storage.bronze_prefix)
    return {
        **bronze_dataset.resources,
        "bronze_store": store,
        "bronze_io_manager": S3ParquetIOManager(store=store),
        "endpoint": settings.s3.endpoint_url,
    }


def test_landing_with_s3_down_names_s3_its_endpoint_and_key(
    bronze_dataset: BronzeDataset, closed_s3: dict[str, Any]
) -> None:
    bronze_dataset.produce(_events(5))
    endpoint = closed_s3.pop("endpoint")

    result = dg.materialize(
        [bronze_dataset.asset()], resources=closed_s3, partition_key=DAY, raise_on_error=False
    )

    assert not result.success
    message = failure_message(result)
    assert f"S3 at {endpoint} is unreachable" in message
    assert "`s3.endpoint_url` (or LAKEHOUSE__S3__ENDPOINT_URL)" in message
    assert "EndpointConnectionError" not in message


def test_arrivals_sensor_with_s3_down_skips_naming_s3(
    bronze_dataset: BronzeDataset, closed_s3: dict[str, Any]
) -> None:
    endpoint = closed_s3.pop("endpoint")
    sensor = build_arrivals_sensor(
        bronze_dataset.settings,
        bronze_dataset.name,
        build_landing_job(bronze_dataset.name, bronze_dataset.asset()),
    )
    resources = {"kafka": closed_s3["kafka"], "bronze_store": closed_s3["bronze_store"]}
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources=resources
    ) as context:
        result = sensor(context)

    assert isinstance(result, dg.SkipReason)
    assert f"S3 at {endpoint} is unreachable" in str(result.skip_message)
    assert "s3.endpoint_url" in str(result.skip_message)


# S3: a missing bucket, refused credentials ---------------------------------------------


def test_missing_bucket_names_storage_bucket_instead_of_reading_as_empty(
    stack: LocalStack,
) -> None:
    environ = dict(os.environ, LAKEHOUSE__STORAGE__BUCKET="lakehouse-no-such-bucket")
    configured = build_resources(load_settings("local", environ=environ))["bronze_store"]

    with dg.build_resources({"bronze_store": configured}) as initialised:  # EnvVars resolved
        store: ParquetStore = initialised.bronze_store
        for use in (
            lambda: store.landed("plain", DAY),
            lambda: list(store.read_batches("plain", [DAY])),
        ):
            with pytest.raises(BucketNotFoundError) as raised:
                use()
            message = str(raised.value)
            assert message.startswith(
                f"S3 at {store.s3.endpoint_url} has no bucket 'lakehouse-no-such-bucket'"
            )
            assert "`storage.bucket` (or LAKEHOUSE__STORAGE__BUCKET)" in message
            assert isinstance(raised.value, ServiceUnreachableError)  # the sensor skips on it


@pytest.fixture(scope="module")
def signing_s3() -> Iterator[tuple[str, dict[str, str]]]:
    """An S3 server that checks signatures: its endpoint and one key pair it knows."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # The first three requests (bucket, user, key) go unchecked; every later one is.
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the signing S3 server did not start") from None
                time.sleep(0.1)
        setup: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        boto3.client("s3", **setup).create_bucket(Bucket="lakehouse")
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="lakehouse")
        key = iam.create_access_key(UserName="lakehouse")["AccessKey"]
        yield endpoint, {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize(
    ("case", "code"),
    [("unknown key id", "InvalidAccessKeyId"), ("wrong secret", "SignatureDoesNotMatch")],
)
def test_refused_s3_credentials_name_the_variables_never_the_values(
    case: str,
    code: str,
    signing_s3: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, known = signing_s3
    key_id = "AKIAUNKNOWNKEY000000" if case == "unknown key id" else known["id"]
    monkeypatch.setenv("LH_TEST_S3_KEY", key_id)
    monkeypatch.setenv("LH_TEST_S3_SECRET", "not-the-secret-1234")
    environ = dict(os.environ)
    environ.update(
        {
            "LAKEHOUSE__S3__ENDPOINT_URL": endpoint,
            "LAKEHOUSE__S3__ACCESS_KEY_ID_ENV": "LH_TEST_S3_KEY",
            "LAKEHOUSE__S3__SECRET_ACCESS_KEY_ENV": "LH_TEST_S3_SECRET",
        }
    )
    settings = load_settings("local", environ=environ)
    store = ParquetStore(s3=s3_resource(settings), prefix=settings.storage.bronze_prefix)

    with (
        dg.build_resources({"bronze_store": store}) as initialised,  # EnvVars resolved
        pytest.raises(CredentialsError) as raised,
    ):
        initialised.bronze_store.landed("plain", DAY)

    message = str(raised.value)
    assert message.startswith(f"S3 at {endpoint} refused the credentials (")
    assert code in message
    assert "LH_TEST_S3_KEY (named by `s3.access_key_id_env`)" in message
    assert "LH_TEST_S3_SECRET (named by `s3.secret_access_key_env`)" in message
    assert "not-the-secret-1234" not in message
