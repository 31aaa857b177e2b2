"""Bronze landing: exactly-once, by UTC day of the Kafka timestamp, byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from confluent_kafka import TopicPartition

from lakehouse_assets.partitions import daily_partitions
from tests.integration.conftest import (
    BronzeDataset,
    Record,
    dataset_settings,
    failure_message,
    metadata_value,
)

pytestmark = pytest.mark.integration

DAY1, DAY2, DAY3 = "2026-11-10", "2026-11-11", "2026-11-12"


def _events(day: str, count: int, start: int = 0) -> list[Record]:
    base = datetime.fromisoformat(day).replace(tzinfo=UTC)
    step = timedelta(seconds=86_000 / max(count, 1))
    return [
        (
            f"k{start + i}".encode(),
            json.dumps({"id": start + i, "day": day}).encode(),
            base + step * i,
            None,
        )
        for i in range(count)
    ]


def _coordinates(table: pa.Table) -> list[tuple[str, int, int]]:
    return list(
        zip(
            table.column("topic").to_pylist(),
            table.column("partition").to_pylist(),
            table.column("offset").to_pylist(),
            strict=True,
        )
    )


def _assert_exactly_once(table: pa.Table, expected: int) -> None:
    coordinates = _coordinates(table)
    assert len(coordinates) == expected
    assert len(set(coordinates)) == expected, "duplicate (topic, partition, offset)"


def _content(table: pa.Table) -> list[tuple[object, ...]]:
    """Rows without the load metadata, in offset order: what must not change on re-landing."""
    columns = ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def test_landing_n_records_lands_each_offset_once(bronze_dataset: BronzeDataset) -> None:
    bronze_dataset.produce(_events(DAY1, 900))

    result = bronze_dataset.land([DAY1])

    assert result.success
    _assert_exactly_once(bronze_dataset.read([DAY1]), 900)
    # one file per Kafka partition, named after the offsets it holds
    files = bronze_dataset.files(DAY1)
    assert len(files) == 3
    assert all(name.startswith(f"{bronze_dataset.topic}+") for name in files)
    node = bronze_dataset.asset().node_def.name
    assert metadata_value(result, node, "dagster/row_count") == 900
    assert metadata_value(result, node, "files_written") == 3
    schema = metadata_value(result, node, "dagster/column_schema")
    assert [c.name for c in schema.columns][:3] == ["topic", "partition", "offset"]


def test_landing_again_rewrites_the_same_objects(bronze_dataset: BronzeDataset) -> None:
    bronze_dataset.produce(_events(DAY1, 600))
    bronze_dataset.land([DAY1])
    first_files, first_rows = bronze_dataset.files(DAY1), _content(bronze_dataset.read([DAY1]))

    bronze_dataset.land([DAY1])  # replace
    bronze_dataset.land([DAY1], mode="append")  # nothing left to land

    assert bronze_dataset.files(DAY1) == first_files
    assert _content(bronze_dataset.read([DAY1])) == first_rows
    _assert_exactly_once(bronze_dataset.read([DAY1]), 600)


def test_append_lands_only_new_offsets(bronze_dataset: BronzeDataset) -> None:
    bronze_dataset.produce(_events(DAY1, 300))
    bronze_dataset.land([DAY1], mode="append")
    bronze_dataset.produce(_events(DAY1, 300, start=300))

    bronze_dataset.land([DAY1], mode="append")

    _assert_exactly_once(bronze_dataset.read([DAY1]), 600)
    assert len(bronze_dataset.files(DAY1)) == 6  # two landings x three partitions


def test_backfilling_a_past_day_replaces_it_with_identical_content(
    bronze_dataset: BronzeDataset,
) -> None:
    bronze_dataset.produce(_events(DAY1, 200))
    bronze_dataset.land([DAY1], mode="append")
    bronze_dataset.produce(_events(DAY1, 200, start=200))
    bronze_dataset.land([DAY1], mode="append")
    appended = _content(bronze_dataset.read([DAY1]))

    bronze_dataset.land([DAY1], mode="replace")

    assert _content(bronze_dataset.read([DAY1])) == appended
    assert len(bronze_dataset.files(DAY1)) == 3  # the day is compacted: one file per partition


def test_records_spanning_midnight_land_in_their_two_days(bronze_dataset: BronzeDataset) -> None:
    midnight = datetime(2026, 11, 11, tzinfo=UTC)
    records: list[Record] = [
        (b"before", b"1", midnight - timedelta(milliseconds=1), None),
        (b"at", b"2", midnight, None),
        (b"after", b"3", midnight + timedelta(seconds=5), None),
    ]
    bronze_dataset.produce(records, partition=0)

    bronze_dataset.land([DAY1, DAY2])

    assert bronze_dataset.read([DAY1]).column("key").to_pylist() == [b"before"]
    assert bronze_dataset.read([DAY2]).column("key").to_pylist() == [b"at", b"after"]


def test_single_run_backfill_of_a_range_lands_every_day(bronze_dataset: BronzeDataset) -> None:
    for day in (DAY1, DAY2, DAY3):
        bronze_dataset.produce(_events(day, 150))

    result = bronze_dataset.land([DAY1, DAY2, DAY3])

    assert result.success
    for day in (DAY1, DAY2, DAY3):
        table = bronze_dataset.read([day])
        _assert_exactly_once(table, 150)
        days = {t.date().isoformat() for t in table.column("timestamp").to_pylist()}
        assert days == {day}
    _assert_exactly_once(bronze_dataset.read([DAY1, DAY2, DAY3]), 450)


def test_hostile_records_land_byte_for_byte(bronze_dataset: BronzeDataset) -> None:
    stamp = datetime(2026, 11, 10, 12, tzinfo=UTC)
    huge = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB, not UTF-8
    records: list[Record] = [
        (b"not-utf8", b"\xff\xfe\x00\x80garbage", stamp, None),
        (b"empty", b"", stamp, None),
        (None, b'{"no": "key"}', stamp, None),
        (b"tombstone", None, stamp, None),
        (b"huge", huge, stamp, None),
        (b"headers", b"{}", stamp, [("x-unknown", b"\x00\x01"), ("x-dup", b"a"), ("x-dup", b"b")]),
        (b"\x00binary-key\xff", b'{"truncated": ', stamp, None),
    ]
    bronze_dataset.produce(records, partition=1)

    bronze_dataset.land([DAY1])

    table = bronze_dataset.read([DAY1]).sort_by("offset")
    assert table.column("key").to_pylist() == [r[0] for r in records]
    assert table.column("value").to_pylist() == [r[1] for r in records]
    assert table.column("headers").to_pylist()[5] == [
        {"key": "x-unknown", "value": b"\x00\x01"},
        {"key": "x-dup", "value": b"a"},
        {"key": "x-dup", "value": b"b"},
    ]
    assert pc.all(pc.equal(table.column("partition"), 1)).as_py()


def test_missing_topic_fails_the_run_with_a_named_error(bronze_dataset: BronzeDataset) -> None:
    missing = BronzeDataset(
        name=bronze_dataset.name,
        topic="no-such-topic",
        settings=dataset_settings(bronze_dataset.name, "no-such-topic"),
        partitions=0,
    )
    result = missing.land([DAY1], raise_on_error=False)

    assert not result.success
    assert "Kafka topic 'no-such-topic' does not exist" in failure_message(result)


def test_day_whose_start_kafka_no_longer_retains_is_refused(
    bronze_dataset: BronzeDataset,
) -> None:
    bronze_dataset.produce(_events(DAY1, 30), partition=0)
    bronze_dataset.produce(_events(DAY2, 30), partition=0)
    bronze_dataset.land([DAY1, DAY2])
    before = _content(bronze_dataset.read([DAY1]))
    admin = bronze_dataset.resources["kafka"].admin()
    # Retention deletes the first 10 records of DAY1 (DeleteRecords moves the low watermark).
    futures = admin.delete_records([TopicPartition(bronze_dataset.topic, 0, 10)])
    for future in futures.values():
        future.result(30)

    result = bronze_dataset.land([DAY1], raise_on_error=False)

    assert not result.success
    assert f"Kafka no longer retains the start of {DAY1}" in failure_message(result)
    assert _content(bronze_dataset.read([DAY1])) == before  # the bronze copy is kept
    assert bronze_dataset.land([DAY2]).success  # later days are unaffected


def test_bronze_as_an_input_fails_saying_how_to_read_it(bronze_dataset: BronzeDataset) -> None:
    """Bronze is read through the store, which resolves overlapping files, never loaded."""
    bronze_dataset.produce(_events(DAY1, 10))
    bronze_dataset.land([DAY1])
    bronze = bronze_dataset.asset()

    @dg.asset(
        ins={"raw": dg.AssetIn(key=bronze.key)},
        partitions_def=daily_partitions(bronze_dataset.settings, bronze_dataset.name),
    )
    def consumer(raw: object) -> None:
        raise AssertionError("bronze must not load as an input")

    result = dg.materialize(
        [bronze, consumer],
        selection=[consumer.key],
        partition_key=DAY1,
        resources=bronze_dataset.resources,
        raise_on_error=False,
    )

    assert not result.success
    message = failure_message(result)
    assert "is not loaded as an input" in message
    assert "`deps`" in message
    assert "bronze_store" in message


def test_a_planned_range_that_retention_deleted_fails_the_read_instead_of_skipping_it(
    bronze_dataset: BronzeDataset,
) -> None:
    """Records deleted between planning and reading would otherwise be skipped silently,
    and the file named by the range would claim offsets it does not hold."""
    from resources.errors import RecordsDeletedError
    from resources.kafka.client import TopicReader

    stamp = datetime.now(UTC) - timedelta(hours=1)
    bronze_dataset.produce([(f"r{i}".encode(), b"{}", stamp, None) for i in range(10)], partition=0)
    kafka = bronze_dataset.resources["kafka"]
    admin = kafka.admin()  # kept: its futures resolve only while it lives
    deleted = admin.delete_records([TopicPartition(bronze_dataset.topic, 0, 5)])
    for future in deleted.values():
        future.result(30)

    with (
        TopicReader(kafka, bronze_dataset.topic) as reader,
        pytest.raises(RecordsDeletedError, match=rf"{bronze_dataset.topic}\[0\] at offset 0"),
    ):
        list(reader.read(0, 0, 9))
