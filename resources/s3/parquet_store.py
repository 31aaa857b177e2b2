"""IO manager for daily-partitioned Parquet on S3: the bronze landing copy.

Layout: ``s3://<bucket>/<prefix>/<dataset>/date=YYYY-MM-DD/<topic>+<p>+<first>-<last>.parquet``
(ZSTD). The asset hands over a :class:`Landing` (files to write, produced lazily so
that no day is ever held in memory); this IO manager writes each file atomically
(an S3 multipart upload is only visible once complete), then removes the files the
new ones replace. Loads stream Arrow record batches over the files of the
requested partition(s), reading every offset exactly once (see
:func:`resources.s3.offset_files.resolve`).

Failures of the object store (endpoint down, credentials refused, bucket missing)
surface as the named errors of :meth:`resources.s3.client.S3Resource.named_errors`, from
the store's methods and from the streams they return.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from resources.s3.client import S3Resource
from resources.s3.offset_files import OffsetRange, ReadPlan, redundant, resolve
from resources.table_metadata import (
    column_schema,
)

if TYPE_CHECKING:
    import s3fs


@dataclass(frozen=True)
class LandedFile:
    """One file to land: the day it belongs to, the offsets it covers, its row groups."""

    partition_key: str
    range: OffsetRange
    batches: Iterable[pa.RecordBatch | pa.Table]


@dataclass
class Landing:
    """What a landing run produces for the IO manager.

    ``mode="replace"`` makes each day in ``partition_keys`` exactly the files
    written by this run; ``mode="append"`` adds files and only removes older files
    that a new one wholly covers.
    """

    mode: Literal["replace", "append"]
    partition_keys: list[str]
    schema: pa.Schema
    files: Iterable[LandedFile]
    source_metadata: dict[str, object] = field(default_factory=dict)


class ParquetStore(dg.ConfigurableResource):
    """Daily-partitioned ZSTD Parquet under ``s3://<bucket>/<prefix>/<dataset>/date=YYYY-MM-DD/``.

    The layout and its ledger: where a day's files live, which offsets they hold,
    how to write one atomically and how to read days back exactly once. The IO
    manager stores through it; the landing asset and the arrivals sensor ask it
    what has landed.
    """

    s3: S3Resource = Field(description="The object store (bucket and endpoint).")
    prefix: str = Field(
        default="bronze", description="Key prefix of the layer (`storage.bronze_prefix`)."
    )
    compression: str = Field(default="zstd", description="Parquet compression codec.")
    compression_level: int = Field(default=3, description="Codec level; 3 balances speed and size.")

    def filesystem(self) -> s3fs.S3FileSystem:
        import s3fs

        # No listing cache: landed offsets are read from the store and must be current.
        return s3fs.S3FileSystem(
            **self.s3.storage_options(), use_listings_cache=False, skip_instance_cache=True
        )

    def partition_dir(self, dataset: str, partition_key: str) -> str:
        return f"{self.s3.bucket}/{self.prefix}/{dataset}/date={partition_key}"

    def landed(
        self, dataset: str, partition_key: str, fs: s3fs.S3FileSystem | None = None
    ) -> list[OffsetRange]:
        """The offset ranges landed for one day, recovered from the file names."""
        fs = fs or self.filesystem()
        directory = self.partition_dir(dataset, partition_key)
        paths = self._listed(f"listing s3://{directory}/", lambda: fs.ls(directory, detail=False))
        names = [path.rsplit("/", 1)[-1] for path in paths]
        return [r for r in map(OffsetRange.parse, names) if r is not None]

    def _listed(self, doing: str, listing: Callable[[], list[str]]) -> list[str]:
        """The paths ``listing`` returns; none where nothing was landed yet.

        A missing directory is a day with nothing landed; a missing bucket, refused
        credentials or an unreachable endpoint are the named errors of ``doing``.
        """
        with self.s3.named_errors(doing):
            try:
                return listing()
            except FileNotFoundError as exc:
                if self.s3.named_error(exc, doing) is None:
                    return []
                raise

    def landed_days(
        self, dataset: str, partition_keys: Iterable[str], fs: s3fs.S3FileSystem | None = None
    ) -> dict[str, list[OffsetRange]]:
        """:meth:`landed` of several days, one listing per month they fall in: every key
        under ``date=YYYY-MM-``, grouped by day.

        A backfill of tiny days then pays one LIST per month (paginated, 1,000 keys a
        page) instead of one per day; a month with a single day asked is listed as
        :meth:`landed` does.
        """
        days = sorted(set(partition_keys))
        by_month: dict[str, list[str]] = defaultdict(list)
        for day in days:
            by_month[day[:8]].append(day)  # "2026-11-"
        fs = fs or self.filesystem()
        base = f"{self.s3.bucket}/{self.prefix}/{dataset}"
        found: dict[str, list[OffsetRange]] = {}
        for month, month_days in by_month.items():
            if len(month_days) == 1:
                found[month_days[0]] = self.landed(dataset, month_days[0], fs)
                continue
            prefix = f"date={month}"
            found.update({day: [] for day in month_days})
            paths = self._listed(
                f"listing s3://{base}/{prefix}*", partial(fs.find, base, prefix=prefix)
            )
            for path in paths:
                directory, _, name = path.rpartition("/")
                day = directory.rpartition("/date=")[2]
                item = OffsetRange.parse(name)
                if day in found and item is not None and directory == f"{base}/date={day}":
                    found[day].append(item)
        return found

    def write_file(
        self,
        fs: s3fs.S3FileSystem,
        path: str,
        schema: pa.Schema,
        row_groups: Iterable[pa.RecordBatch | pa.Table],
    ) -> tuple[int, int]:
        """Stream row groups into one Parquet object; returns (rows, bytes). All or nothing.

        Encoding, compressing and uploading a row group run on a writer thread
        (Arrow releases the GIL for them) while the caller produces the next one; at
        most one row group is in flight, so memory stays bounded.
        """
        with self.s3.named_errors(f"writing s3://{path}"):
            return self._write_file(fs, path, schema, row_groups)

    def _write_file(
        self,
        fs: s3fs.S3FileSystem,
        path: str,
        schema: pa.Schema,
        row_groups: Iterable[pa.RecordBatch | pa.Table],
    ) -> tuple[int, int]:
        rows = 0
        writer: pq.ParquetWriter | None = None
        sink = fs.open(path, "wb", block_size=16 * 1024 * 1024)
        try:
            writer = pq.ParquetWriter(
                sink,
                schema,
                compression=self.compression,
                compression_level=self.compression_level,
            )
            with ThreadPoolExecutor(1, thread_name_prefix="parquet-writer") as pool:
                in_flight: Future[None] | None = None
                for group in row_groups:
                    if in_flight is not None:
                        in_flight.result()
                    in_flight = pool.submit(writer.write, group)
                    rows += group.num_rows
                if in_flight is not None:
                    in_flight.result()
            writer.close()
            # The object's size, without a HEAD request after the upload.
            size = sink.tell()
            sink.close()
        except BaseException:
            # Abort the multipart upload: a failed write must never become visible. An
            # upload that cannot be aborted (the store is down) is never completed
            # either, so it stays invisible; the error that stopped the write is the
            # one to report, not the abort's.
            with contextlib.suppress(Exception):
                sink.discard()
            sink.closed = True
            if writer is not None:
                # Nothing more goes to the aborted upload; the writer's finaliser would
                # try to write the footer and log a misleading "File not in write mode".
                writer.is_open = False
            raise
        return rows, int(size)

    # Reading ----------------------------------------------------------------------------

    def read_plan(self, dataset: str, partition_keys: Iterable[str]) -> list[tuple[str, ReadPlan]]:
        """(directory, plan) for every file to read across the given days."""
        days = list(partition_keys)
        landed = self.landed_days(dataset, days)
        plans: list[tuple[str, ReadPlan]] = []
        for day in days:
            directory = self.partition_dir(dataset, day)
            plans.extend((directory, plan) for plan in resolve(landed[day]))
        return plans

    def count_rows(self, dataset: str, partition_keys: Iterable[str]) -> int:
        """Records landed for the given days, each offset once, from the Parquet footers
        (and the offset column of files that another file overlaps)."""
        fs = self.filesystem()
        total = 0
        for directory, plan in self.read_plan(dataset, partition_keys):
            path = f"{directory}/{plan.range.file_name}"
            with self.s3.named_errors(f"reading s3://{path}"), fs.open(path, "rb") as source:
                parquet = pq.ParquetFile(source)
                if plan.read_from == plan.range.first:
                    total += parquet.metadata.num_rows
                    continue
                for batch in parquet.iter_batches(columns=["offset"]):
                    offsets = batch.column("offset")
                    total += pc.sum(pc.greater_equal(offsets, plan.read_from)).as_py() or 0
        return total

    def read_batches(
        self,
        dataset: str,
        partition_keys: Iterable[str],
        batch_size: int = 65_536,
        plans: list[tuple[str, ReadPlan]] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the rows of the given days (or of ``plans`` already made), batch by batch."""
        fs = self.filesystem()
        if plans is None:
            plans = self.read_plan(dataset, partition_keys)
        for directory, plan in plans:
            path = f"{directory}/{plan.range.file_name}"
            with self.s3.named_errors(f"reading s3://{path}"), fs.open(path, "rb") as source:
                for stored in pq.ParquetFile(source).iter_batches(batch_size=batch_size):
                    batch = stored
                    if plan.read_from > plan.range.first:
                        # Offsets before read_from were read from an overlapping file.
                        batch = stored.filter(
                            pc.greater_equal(stored.column("offset"), plan.read_from)
                        )
                    if batch.num_rows:
                        yield batch


class S3ParquetIOManager(dg.ConfigurableIOManager):
    """Stores daily-partitioned assets as ZSTD Parquet through a :class:`ParquetStore`.

    The dataset is the last component of the asset key; the partition key is the
    UTC date. Handles single partitions and ranges (single-run backfills); loads
    return a streaming ``pyarrow.RecordBatchReader``.
    """

    store: ParquetStore = Field(description="Layout and ledger of the Parquet files.")

    def handle_output(self, context: dg.OutputContext, obj: Landing) -> None:
        if not isinstance(obj, Landing):
            raise TypeError(
                f"{type(self).__name__} stores bronze landings; asset {context.asset_key.to_user_string()} "
                f"returned {type(obj).__name__}"
            )
        store = self.store
        dataset = context.asset_key.path[-1]
        fs = store.filesystem()
        written: dict[str, list[OffsetRange]] = defaultdict(list)
        rows_by_day: dict[str, int] = defaultdict(int)
        total_rows = total_bytes = 0
        for landed_file in obj.files:
            day = landed_file.partition_key
            path = f"{store.partition_dir(dataset, day)}/{landed_file.range.file_name}"
            rows, size = store.write_file(fs, path, obj.schema, landed_file.batches)
            written[day].append(landed_file.range)
            rows_by_day[day] += rows
            total_rows += rows
            total_bytes += size
            context.log.debug(f"landed {rows} rows in s3://{path}")
        removed = 0
        landed = store.landed_days(dataset, obj.partition_keys, fs)
        for day in obj.partition_keys:
            present = landed[day]
            if obj.mode == "replace":
                kept = set(written[day])
                stale = [r for r in present if r not in kept]
            else:
                stale = redundant(present)
            for item in stale:
                path = f"{store.partition_dir(dataset, day)}/{item.file_name}"
                with store.s3.named_errors(f"removing s3://{path}, which this run replaced"):
                    fs.rm_file(path)
            removed += len(stale)
        context.add_output_metadata(
            {
                "dagster/row_count": total_rows,
                "dagster/column_schema": column_schema(obj.schema),
                "dagster/uri": f"s3://{store.s3.bucket}/{store.prefix}/{dataset}/",
                "bytes_written": total_bytes,
                "files_written": sum(len(v) for v in written.values()),
                "files_removed": removed,
                "mode": obj.mode,
                "rows_by_partition": dg.MetadataValue.json(dict(sorted(rows_by_day.items()))),
                "offset_ranges": dg.MetadataValue.json(
                    {
                        day: [
                            f"{r.topic}[{r.partition}] {r.first}-{r.last}" for r in sorted(ranges)
                        ]
                        for day, ranges in sorted(written.items())
                    }
                ),
                **{k: _metadata(v) for k, v in obj.source_metadata.items()},
            }
        )

    def load_input(self, context: dg.InputContext) -> Any:
        """Bronze is never loaded as an input: readers take it from the store.

        Silver reads a day's files through :meth:`ParquetStore.read_plan`, which resolves
        overlapping offset ranges, in one Spark job; a downstream asset names bronze in
        ``deps`` and uses the ``bronze_store`` resource the same way.
        """
        raise dg.Failure(
            f"bronze asset {context.asset_key.to_user_string()} is not loaded as an input: "
            "name it in `deps` and read it with the `bronze_store` resource "
            "(ParquetStore.read_plan / read_batches), which resolves overlapping files"
        )


def _metadata(value: object) -> Any:
    if isinstance(value, (dict, list)):
        return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
    return value
