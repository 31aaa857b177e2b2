"""The local stack: idempotent start, clean stop, data kept across a restart."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import dagster as dg
import pytest

from lakehouse_dev.processes import pids_running
from lakehouse_dev.stack import LocalStack
from resources.environments import build_resources
from resources.errors import ServiceUnreachableError
from resources.kafka.client import KafkaResource
from resources.settings import ConfigError, LakehouseSettings, load_settings
from tests.conftest import _free_port, _free_port_pair

pytestmark = pytest.mark.integration


def _own_stack(data_dir: Path) -> LocalStack:
    """A second stack with its own ports and data, beside the session's.

    Its data directory is a directory of its own under the temporary directory, not
    pytest's ``tmp_path``: when tests run as root, PostgreSQL runs as the ``postgres``
    user, which must be able to pass every directory above its cluster
    (``/tmp/pytest-of-root`` is private to root)."""
    environ = dict(os.environ)
    environ.update(
        {
            "LAKEHOUSE__STACK__DATA_DIR": str(data_dir),
            "LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port_pair()}",
            "LAKEHOUSE__S3__ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}",
            "LAKEHOUSE__STACK__POSTGRES_PORT": str(_free_port()),
        }
    )
    return LocalStack.from_settings(load_settings("local", environ=environ))


def test_start_twice_stop_restart_keeps_data_and_leaves_no_process() -> None:
    stack = _own_stack(Path(tempfile.mkdtemp(prefix="lakehouse-own-stack-")))
    settings = stack.settings
    data_dir = str(settings.data_dir)
    try:
        stack.start()
        first_pids = (stack.kafka.pid, stack.s3.process.pid(), stack.postgres.process.pid())
        stack.start()  # a second start finds every service and changes nothing
        assert (stack.kafka.pid, stack.s3.process.pid(), stack.postgres.process.pid()) == first_pids
        assert stack.status() == {"kafka": True, "s3": True, "postgres": True}

        resources = build_resources(settings)
        key = f"survives/{uuid.uuid4().hex}"
        resources["s3"].client().put_object(Bucket=settings.storage.bucket, Key=key, Body=b"kept")
        producer = resources["kafka"].producer()
        producer.produce("plain-events", key=b"k", value=b"kept")
        assert producer.flush(30) == 0
        del producer  # its connection must not outlive the broker it talks to
        with resources["postgres"].connect() as conn:
            conn.execute("create table survives (value text)")
            conn.execute("insert into survives values ('kept')")

        stack.stop()
        assert stack.status() == {"kafka": False, "s3": False, "postgres": False}
        assert pids_running(data_dir) == [], "a process of the stopped stack is still running"

        stack.start()
        body = resources["s3"].client().get_object(Bucket=settings.storage.bucket, Key=key)
        assert body["Body"].read() == b"kept"
        consumer = resources["kafka"].consumer(group_id=f"restart-{uuid.uuid4().hex}")
        consumer.subscribe(["plain-events"])
        values = []
        for _ in range(30):
            message = consumer.poll(1)
            if message is not None and not message.error():
                values.append(message.value())
                break
        consumer.close()
        assert values == [b"kept"]
        with resources["postgres"].connect() as conn:
            assert conn.execute("select value from survives").fetchall() == [("kept",)]
        namespaces = {".".join(ns) for ns in resources["iceberg"].load().list_namespaces()}
        assert {"bronze", "silver", "gold"} <= namespaces
    finally:
        stack.stop()
        left_running = pids_running(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    assert left_running == []


def test_stack_refuses_an_environment_with_remote_endpoints() -> None:
    settings = load_settings("prod", environ={"LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "b-1:9098"})
    with pytest.raises(ConfigError, match="does not use local services"):
        LocalStack.from_settings(settings)


def _unreachable(settings: LakehouseSettings) -> LakehouseSettings:
    environ = dict(os.environ)
    environ["LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS"] = f"127.0.0.1:{_free_port()}"
    environ["LAKEHOUSE__S3__ENDPOINT_URL"] = f"http://127.0.0.1:{_free_port()}"
    return load_settings("local", environ=environ)


def test_unreachable_kafka_is_a_named_error(settings: LakehouseSettings) -> None:
    closed = _unreachable(settings).kafka.bootstrap_servers
    kafka = KafkaResource(bootstrap_servers=closed, timeout_seconds=2.0)
    with pytest.raises(ServiceUnreachableError, match=r"Kafka at 127\.0\.0\.1:\d+ is unreachable"):
        kafka.check_reachable()


def test_unreachable_s3_is_a_named_error(settings: LakehouseSettings) -> None:
    # Initialised as in a run: credentials named by EnvVar are resolved first.
    with (
        dg.build_resources({"s3": build_resources(_unreachable(settings))["s3"]}) as initialised,
        pytest.raises(
            ServiceUnreachableError, match=r"S3 at http://127\.0\.0\.1:\d+ is unreachable"
        ),
    ):
        initialised.s3.check_reachable()


def test_missing_topic_is_a_named_error(resources: object) -> None:
    kafka = resources.kafka  # type: ignore[attr-defined]
    with pytest.raises(LookupError, match="Kafka topic 'no-such-topic' does not exist"):
        kafka.partitions_of("no-such-topic")
