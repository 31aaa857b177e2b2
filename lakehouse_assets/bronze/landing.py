"""Landing Kafka records as bronze rows: which offsets belong to a day, and their Arrow form.

A bronze day ``D`` of a topic-partition is the offset range from the first record
stamped at or after ``D 00:00 UTC`` up to (excluding) the first stamped at or
after ``D+1 00:00 UTC``, as Kafka's own time index answers it
(``offsets_for_times``). That makes every day a deterministic function of the log:
re-landing it reads exactly the same offsets. With producer timestamps that are
not monotonic, a record belongs to the day of the latest timestamp seen before it
in its partition, so no record is ever outside every day's range.

Rows keep the record exactly as received: the value and key as bytes (no parsing
that could fail), headers, coordinates and load metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from resources.s3.offset_files import OffsetRange, missing
from resources.s3.parquet_store import LandedFile

if TYPE_CHECKING:
    from confluent_kafka import Message

    from resources.kafka.client import TopicReader

HEADER = pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())])

BRONZE_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("timestamp_type", pa.int8(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("headers", pa.list_(HEADER)),
        pa.field("load_run_id", pa.string(), nullable=False),
        pa.field("loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

#: Rows per Parquet row group; bounded by bytes too.
BATCH_RECORDS = 50_000
BATCH_BYTES = 32 * 1024 * 1024


class RetentionError(RuntimeError):
    """Kafka no longer holds the beginning of a day: landing it would write a partial day."""


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def parse_day(partition_key: str) -> date:
    return date.fromisoformat(partition_key)


@dataclass(frozen=True)
class DayRanges:
    """Per topic-partition, the offsets ``start..end-1`` that make up one day."""

    day: str
    bounds: dict[int, tuple[int, int]]
    retained_from: dict[int, int]


def day_ranges(reader: TopicReader, days: Sequence[str]) -> list[DayRanges]:
    """The offset range of each day, from Kafka's time index (no record is consumed).

    Raises:
        RetentionError: when retention has already deleted the start of a day.
    """
    watermarks = reader.watermarks()
    highs = {p: high for p, (_, high) in watermarks.items()}
    result = []
    for key in days:
        day = parse_day(key)
        starts = reader.offsets_at(day_start_ms(day), highs)
        ends = reader.offsets_at(day_start_ms(day + timedelta(days=1)), highs)
        for partition, (low, _) in watermarks.items():
            if low > 0 and starts[partition] == low and ends[partition] > low:
                # Records before `low` were deleted and no retained record precedes
                # the day, so some of the day's records may be among the deleted.
                raise RetentionError(
                    f"Kafka no longer retains the start of {key} in {reader.topic}[{partition}]: "
                    f"the earliest retained offset is {low} and it already belongs to that day "
                    "or later. Landing it now would write a partial day; the bronze copy that "
                    "exists is kept. Raise the topic's retention.ms to backfill further back."
                )
        result.append(
            DayRanges(
                key,
                {p: (starts[p], max(starts[p], ends[p])) for p in reader.partitions},
                {p: low for p, (low, _) in watermarks.items()},
            )
        )
    return result


def to_batch(
    messages: Sequence[Message], item: OffsetRange, run_id: str, loaded_at: datetime
) -> pa.RecordBatch:
    """Arrow rows for records of one topic-partition (``item``), keeping bytes as bytes.

    One pass over the records; the coordinates shared by every row (topic,
    partition, run, load time) are repeated by Arrow, not per record in Python.
    """
    offsets = []
    timestamp_types = []
    timestamps = []
    keys = []
    values = []
    headers: list[Any] = []
    for message in messages:
        kind, stamp = message.timestamp()
        offsets.append(message.offset())
        timestamp_types.append(kind)
        timestamps.append(stamp)
        keys.append(message.key())
        values.append(message.value())
        raw = message.headers()
        headers.append(None if raw is None else list(raw))
    count = len(offsets)
    return pa.RecordBatch.from_arrays(
        [
            pa.repeat(pa.scalar(item.topic, pa.string()), count),
            pa.repeat(pa.scalar(item.partition, pa.int32()), count),
            pa.array(offsets, pa.int64()),
            pa.array(timestamps, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array(timestamp_types, pa.int8()),
            pa.array(keys, pa.binary()),
            pa.array(values, pa.binary()),
            pa.array(headers, pa.list_(HEADER)),
            pa.repeat(pa.scalar(run_id, pa.string()), count),
            pa.repeat(pa.scalar(loaded_at, pa.timestamp("us", tz="UTC")), count),
        ],
        schema=BRONZE_SCHEMA,
    )


def _row_groups(
    reader: TopicReader, item: OffsetRange, run_id: str, loaded_at: datetime
) -> Iterator[pa.Table]:
    """The range's rows as row groups of at most BATCH_RECORDS rows or about BATCH_BYTES.

    Each consumed chunk becomes Arrow at once, so Kafka's message objects live only
    for one chunk; a row group is the chunks' batches side by side (no copy).
    """
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    for messages in reader.read(item.partition, item.first, item.last):
        batch = to_batch(messages, item, run_id, loaded_at)
        pending.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
        if rows >= BATCH_RECORDS or size >= BATCH_BYTES:
            yield pa.Table.from_batches(pending, BRONZE_SCHEMA)
            pending, rows, size = [], 0, 0
    if pending:
        yield pa.Table.from_batches(pending, BRONZE_SCHEMA)


def plan_files(
    ranges: DayRanges,
    topic: str,
    mode: Literal["replace", "append"],
    landed: Sequence[OffsetRange],
) -> list[OffsetRange]:
    """The files to write for one day: all of it (replace) or what is not landed yet (append)."""
    planned: list[OffsetRange] = []
    for partition, (start, end) in sorted(ranges.bounds.items()):
        low = ranges.retained_from[partition]
        lost = [r for r in landed if r.partition == partition and r.first < low]
        if mode == "replace" and lost:
            raise RetentionError(
                f"bronze {ranges.day} holds {topic}[{partition}] offsets from {lost[0].first}, "
                f"but Kafka retains only offsets from {low}: replacing the day would lose "
                "records that exist only in bronze now. The bronze copy is kept."
            )
        if mode == "replace":
            gaps = [(start, end - 1)] if end > start else []
        else:
            gaps = missing(landed, topic, partition, start, end)
        planned.extend(OffsetRange(topic, partition, first, last) for first, last in gaps)
    return planned


def landed_files(
    reader: TopicReader,
    plans: Sequence[tuple[str, OffsetRange]],
    run_id: str,
    loaded_at: datetime,
) -> Iterator[LandedFile]:
    """Files produced lazily, one Kafka range at a time, so memory stays flat."""
    for day, item in plans:
        yield LandedFile(day, item, _row_groups(reader, item, run_id, loaded_at))
