"""Each service proves a real round trip over a real connection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

pytestmark = pytest.mark.integration


def test_kafka_produce_then_consume_returns_the_same_records(resources: Any) -> None:
    kafka = resources.kafka
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    from confluent_kafka.admin import NewTopic

    admin = kafka.admin()  # keep the handle alive until the future resolves
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(200)}
    producer = kafka.producer()
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value, headers=[("origin", b"smoke")])
    assert producer.flush(30) == 0

    consumer = kafka.consumer(group_id=f"smoke-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}
    eof_partitions: set[int] = set()
    try:
        while len(eof_partitions) < 2:
            message = consumer.poll(10)
            assert message is not None, "no message and no end-of-partition within 10 s"
            if message.error():
                assert message.error().code() == -191, message.error()  # _PARTITION_EOF
                eof_partitions.add(message.partition())
                continue
            received[message.key()] = message.value()
            assert message.headers() == [("origin", b"smoke")]
    finally:
        consumer.close()
    assert received == sent


def test_s3_put_then_get_returns_the_same_bytes(resources: Any) -> None:
    s3 = resources.s3
    client = s3.client()
    body = bytes(range(256)) * 4096  # 1 MiB, not valid UTF-8
    key = f"smoke/{uuid.uuid4().hex}.bin"
    client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == body


def test_parquet_written_through_s3fs_reads_back(resources: Any) -> None:
    s3 = resources.s3
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    path = f"{s3.bucket}/smoke/{uuid.uuid4().hex}/part.parquet"
    filesystem = s3.filesystem()
    with filesystem.open(path, "wb") as sink:
        pq.write_table(table, sink, compression="zstd")
    with filesystem.open(path, "rb") as source:
        assert pq.read_table(source).equals(table)


def _sample_rows() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "name": pa.array(["ada", "grace", "linus"], pa.string()),
            "amount": pa.array(
                [Decimal("19.99"), Decimal("0.01"), Decimal("1000.00")], pa.decimal128(18, 2)
            ),
            "event_time": pa.array(
                [datetime(2026, 11, day, 10, tzinfo=UTC) for day in (1, 2, 3)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def test_table_written_by_pyiceberg_is_read_by_spark(
    resources: Any, spark: SparkSession, settings: Any
) -> None:
    catalog = resources.iceberg.load()
    namespace = settings.namespace("bronze")
    name = f"{namespace}.smoke_py_{uuid.uuid4().hex[:8]}"
    rows = _sample_rows()
    table = catalog.create_table(name, schema=rows.schema)
    table.append(rows)

    from_spark = spark.table(name).orderBy("id").collect()
    assert [(r.id, r.name, r.amount, r.event_time) for r in from_spark] == [
        (1, "ada", Decimal("19.99"), datetime(2026, 11, 1, 10)),
        (2, "grace", Decimal("0.01"), datetime(2026, 11, 2, 10)),
        (3, "linus", Decimal("1000.00"), datetime(2026, 11, 3, 10)),
    ]


def test_table_written_by_spark_is_read_by_pyiceberg(
    resources: Any, spark: SparkSession, settings: Any
) -> None:
    namespace = settings.namespace("silver")
    short = f"smoke_spark_{uuid.uuid4().hex[:8]}"
    spark.sql(
        f"CREATE TABLE {namespace}.{short} (id BIGINT, name STRING, amount DECIMAL(18,2), "
        "event_time TIMESTAMP) USING iceberg PARTITIONED BY (days(event_time))"
    )
    spark.sql(
        f"INSERT INTO {namespace}.{short} VALUES "
        "(1, 'ada', 19.99, TIMESTAMP '2026-11-01 10:00:00'), "
        "(2, 'grace', 0.01, TIMESTAMP '2026-11-02 10:00:00')"
    )

    table = resources.iceberg.load().load_table(f"{namespace}.{short}")
    read = table.scan().to_arrow().sort_by("id")
    assert read.column("id").to_pylist() == [1, 2]
    assert read.column("name").to_pylist() == ["ada", "grace"]
    assert read.column("amount").to_pylist() == [Decimal("19.99"), Decimal("0.01")]
    assert [t.date().isoformat() for t in read.column("event_time").to_pylist()] == [
        "2026-11-01",
        "2026-11-02",
    ]
    assert table.spec().fields[0].name == "event_time_day"
    assert table.location().startswith(f"{settings.warehouse}/")


def test_spark_reads_parquet_that_pyarrow_wrote_to_s3(resources: Any, spark: SparkSession) -> None:
    s3 = resources.s3
    prefix = f"smoke/{uuid.uuid4().hex}"
    with s3.filesystem().open(f"{s3.bucket}/{prefix}/part-0.parquet", "wb") as sink:
        pq.write_table(_sample_rows(), sink, compression="zstd")
    frame = spark.read.parquet(f"s3a://{s3.bucket}/{prefix}/")
    assert sorted(r.name for r in frame.collect()) == ["ada", "grace", "linus"]
