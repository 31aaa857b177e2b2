"""Iceberg table maintenance: measure a table's health, then compact, rewrite manifests,
expire snapshots and remove orphan files through Iceberg's Spark procedures.

:func:`measure` reads only metadata (pyiceberg): data files, small files that compaction
could merge, average file size, snapshots, manifests and the size of the current
``metadata.json``. :func:`maintain` runs, in this order:

1. ``rewrite_data_files`` (bin-pack to ``target_file_bytes``), only over the partitions
   holding at least ``min_input_files`` small files (a ``where`` naming them);
2. ``rewrite_manifests``, when the current snapshot has more than one manifest;
3. ``expire_snapshots``: snapshots older than ``max_snapshot_age``, keeping at least
   ``retain_last``; Iceberg never expires a snapshot a branch or tag points at, so an
   unpublished run branch (write-audit-publish) keeps its files;
4. orphan files (Iceberg's ``DeleteOrphanFiles``, :func:`remove_orphan_files`): files
   under the table's location that no snapshot of any branch or tag references and
   that are older than ``orphan_min_age`` (far above the longest run, so a write in
   flight, whose files are not committed yet, is never touched).

Compaction commits with Iceberg's optimistic concurrency: a writer that commits to
the table meanwhile either commits first (the compaction's conflicting groups fail
and are left for the next run, ``partial-progress.enabled``) or retries its own
commit on conflict (:mod:`resources.iceberg.spark_writes`). Nothing is lost either way.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from resources.private_apis import java_session, jvm

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from pyiceberg.table import Table
    from pyspark.sql import SparkSession

    from resources.config_sections import MaintenanceSettings

_MB = 1024 * 1024


@dataclass(frozen=True)
class MaintenancePolicy:
    """Thresholds of one maintenance run (``maintenance`` in ``config/lakehouse.yaml``)."""

    target_file_bytes: int
    small_file_bytes: int
    min_input_files: int
    retain_last: int
    max_snapshot_age: timedelta
    orphan_min_age: timedelta

    @classmethod
    def from_settings(cls, settings: MaintenanceSettings) -> MaintenancePolicy:
        return cls(
            target_file_bytes=settings.target_file_size_mb * _MB,
            small_file_bytes=int(settings.small_file_mb * _MB),
            min_input_files=settings.min_input_files,
            retain_last=settings.snapshot_retain_last,
            max_snapshot_age=timedelta(hours=settings.snapshot_max_age_hours),
            orphan_min_age=timedelta(hours=settings.orphan_min_age_hours),
        )


@dataclass(frozen=True)
class TableHealth:
    """What makes a table slow to plan and read, from its metadata."""

    data_files: int
    #: Small files in partitions that hold at least ``min_input_files`` of them: what
    #: compaction would merge.
    small_files: int
    average_file_bytes: int
    data_bytes: int
    snapshots: int
    manifests: int
    metadata_json_bytes: int

    def metadata(self, suffix: str = "") -> dict[str, int]:
        return {f"{name}{suffix}": value for name, value in asdict(self).items()}


@dataclass(frozen=True)
class Measured:
    """A table's health and the partitions compaction should rewrite."""

    health: TableHealth
    #: Partition values (field name -> value) with enough small files; ``[{}]`` for an
    #: unpartitioned table that needs compaction.
    partitions: list[dict[str, Any]]


def measure(table: Table, policy: MaintenancePolicy) -> Measured:
    """Health of ``table``'s current snapshot on ``main`` (metadata only)."""
    snapshot = table.current_snapshot()
    metadata_bytes = len(table.io.new_input(table.metadata_location))
    if snapshot is None:
        empty = TableHealth(0, 0, 0, 0, len(table.snapshots()), 0, metadata_bytes)
        return Measured(empty, [])
    manifests = snapshot.manifests(table.io)
    # pyiceberg's inspect.files() fails on a snapshot without manifests (a table whose
    # every row was deleted, e.g. a quarantine with nothing in it): no files, then.
    rows = (
        table.inspect.files().select(["content", "partition", "file_size_in_bytes"]).to_pylist()
        if manifests
        else []
    )
    data = [row for row in rows if row["content"] == 0]
    sizes = [row["file_size_in_bytes"] for row in data]
    small_by_partition: Counter[tuple[tuple[str, Any], ...]] = Counter()
    for row in data:
        if row["file_size_in_bytes"] < policy.small_file_bytes:
            small_by_partition[tuple(sorted((row["partition"] or {}).items()))] += 1
    crowded = {
        key: count for key, count in small_by_partition.items() if count >= policy.min_input_files
    }
    health = TableHealth(
        data_files=len(data),
        small_files=sum(crowded.values()),
        average_file_bytes=sum(sizes) // len(sizes) if sizes else 0,
        data_bytes=sum(sizes),
        snapshots=len(table.snapshots()),
        manifests=len(manifests),
        metadata_json_bytes=metadata_bytes,
    )
    return Measured(health, [dict(key) for key in sorted(crowded, key=repr)])


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat()}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return sql_string(str(value))


def sql_string(text: str) -> str:
    """``text`` as a Spark SQL string literal (backslash escapes, Spark's default parser)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def partition_filter(table: Table, partitions: list[dict[str, Any]]) -> str | None:
    """A Spark ``where`` selecting ``partitions`` (values by partition field name), or
    None when it cannot be expressed on source columns (then compaction considers every
    partition and Iceberg's ``min-input-files`` picks the crowded ones).

    Identity partitions compare the column; ``day`` partitions of a timestamp select
    the day's range.
    """
    from pyiceberg.transforms import DayTransform, IdentityTransform

    fields = {field.name: field for field in table.spec().fields}
    if not fields or not partitions:
        return None
    clauses = []
    for values in partitions:
        terms = []
        for name, value in values.items():
            field = fields.get(name)
            if field is None:
                return None
            column = f"`{table.schema().find_column_name(field.source_id)}`"
            if value is None:
                terms.append(f"{column} IS NULL")
            elif isinstance(field.transform, IdentityTransform):
                terms.append(f"{column} = {_literal(value)}")
            elif isinstance(field.transform, DayTransform):
                day = value if isinstance(value, date) else date(1970, 1, 1) + timedelta(value)
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                terms.append(
                    f"{column} >= {_literal(start)} AND {column} < "
                    f"{_literal(start + timedelta(days=1))}"
                )
            else:
                return None
        clauses.append("(" + " AND ".join(terms) + ")")
    return " OR ".join(clauses)


@dataclass(frozen=True)
class MaintenanceResult:
    """What one maintenance run did."""

    partitions_compacted: int
    files_rewritten: int
    files_added: int
    bytes_rewritten: int
    compaction_failed_files: int
    manifests_rewritten: int
    snapshots_expired: int
    files_expired: int
    orphan_files_removed: int

    def metadata(self) -> dict[str, int]:
        return dict(asdict(self))


def _call(spark: SparkSession, catalog: str, procedure: str, arguments: Mapping[str, str]) -> Any:
    named = ", ".join(f"{name} => {value}" for name, value in arguments.items())
    return spark.sql(f"CALL `{catalog}`.system.{procedure}({named})").collect()


#: How Iceberg says that a commit lost a race with another writer's commit.
_CONFLICTS = ("ValidationException", "CommitFailedException")
MANIFEST_REWRITE_ATTEMPTS = 4


def _rewrite_manifests(spark: SparkSession, catalog: str, name: str) -> list[Any]:
    """``rewrite_manifests``, again when a concurrent write replaced a manifest it was
    rewriting (Iceberg refuses such a commit instead of retrying it: "Deleted manifest
    ... could not be found in the latest snapshot"). The rewrite only regroups
    metadata, so after the last attempt it is left to the next maintenance run."""
    for attempt in range(1, MANIFEST_REWRITE_ATTEMPTS + 1):
        try:
            return list(_call(spark, catalog, "rewrite_manifests", {"table": name}))
        except Exception as exc:
            if not any(conflict in str(exc) for conflict in _CONFLICTS):
                raise
            time.sleep(0.5 * attempt)
    return []


def _map(options: Mapping[str, Any]) -> str:
    return "map(" + ", ".join(f"'{k}', '{v}'" for k, v in options.items()) + ")"


def maintain(
    spark: SparkSession,
    catalog: str,
    table: Table,
    policy: MaintenancePolicy,
    *,
    measured: Measured | None = None,
    now: datetime | None = None,
) -> MaintenanceResult:
    """Compact, rewrite manifests, expire snapshots and remove orphans (module docstring).

    ``measured``: :func:`measure` of ``table`` as it is now, when the caller has it.
    """
    moment = now or datetime.now(UTC)
    name = sql_string(".".join(table.name()[-2:]))
    measured = measured or measure(table, policy)
    compacted: dict[str, int] = defaultdict(int)
    if measured.partitions:
        arguments = {
            "table": name,
            "strategy": "'binpack'",
            "options": _map(
                {
                    "target-file-size-bytes": policy.target_file_bytes,
                    "min-file-size-bytes": policy.small_file_bytes,
                    "min-input-files": policy.min_input_files,
                    "partial-progress.enabled": "true",
                }
            ),
        }
        where = partition_filter(table, measured.partitions)
        if where:
            arguments["where"] = sql_string(where)
        for row in _call(spark, catalog, "rewrite_data_files", arguments):
            for key, value in row.asDict().items():
                compacted[key] += int(value or 0)
    manifests = 0
    if measured.health.manifests > 1:
        for row in _rewrite_manifests(spark, catalog, name):
            manifests += int(row["rewritten_manifests_count"] or 0)
    before = len(table.refresh().snapshots())
    expired = _call(
        spark,
        catalog,
        "expire_snapshots",
        {
            "table": name,
            "older_than": _literal(moment - policy.max_snapshot_age),
            "retain_last": str(policy.retain_last),
        },
    )
    files_expired = sum(
        int(value or 0) for row in expired for key, value in row.asDict().items() if "file" in key
    )
    snapshots_expired = before - len(table.refresh().snapshots())
    orphans = remove_orphan_files(spark, catalog, table, moment - policy.orphan_min_age)
    return MaintenanceResult(
        partitions_compacted=(
            len(measured.partitions) if compacted["rewritten_data_files_count"] else 0
        ),
        files_rewritten=compacted["rewritten_data_files_count"],
        files_added=compacted["added_data_files_count"],
        bytes_rewritten=compacted["rewritten_bytes_count"],
        compaction_failed_files=compacted["failed_data_files_count"],
        manifests_rewritten=manifests,
        snapshots_expired=snapshots_expired,
        files_expired=files_expired,
        orphan_files_removed=orphans,
    )


def remove_orphan_files(
    spark: SparkSession, catalog: str, table: Table, older_than: datetime
) -> int:
    """Delete the files under ``table``'s location that no snapshot of any branch or tag
    references and that were last modified before ``older_than``; how many.

    Iceberg's ``DeleteOrphanFiles`` action, as its ``remove_orphan_files`` procedure runs
    it, called directly: the procedure refuses ages under 24 hours whatever the
    deployment's runs take, while ``maintenance.orphan_min_age_hours`` is the guard here.
    """
    java = jvm(spark)
    session = java_session(spark)
    name = f"`{catalog}`." + ".".join(f"`{part}`" for part in table.name()[-2:])
    iceberg_table = java.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(session, name)
    result = (
        java.org.apache.iceberg.spark.actions.SparkActions.get(session)
        .deleteOrphanFiles(iceberg_table)
        .olderThan(int(older_than.timestamp() * 1000))
        .execute()
    )
    removed = 0
    locations = result.orphanFileLocations().iterator()
    while locations.hasNext():
        locations.next()
        removed += 1
    return removed


def stored_objects(s3: S3Client, location: str) -> dict[str, int]:
    """Every object under the table's ``location`` (``s3://bucket/prefix``) and its size."""
    bucket, _, prefix = location.split("://", 1)[1].partition("/")
    objects: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix.rstrip("/") + "/"
    ):
        for item in page.get("Contents", []):
            objects[item["Key"]] = int(item["Size"])
    return objects


def bytes_removed(before: Mapping[str, int], after: Mapping[str, int]) -> int:
    """Bytes of the objects present ``before`` and gone ``after``."""
    return sum(size for key, size in before.items() if key not in after)
