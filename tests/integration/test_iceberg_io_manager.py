"""The Iceberg IO manager against the real local stack (S3 server + embedded catalog)."""

import json
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform, IdentityTransform

from resources.iceberg import arrow_writes
from resources.iceberg.io_manager import (
    PARTITION_KEYS_PROPERTY,
    RUN_ID_PROPERTY,
    IcebergCommitError,
    IcebergIOManager,
    WriteRequest,
)
from tests.integration.conftest import failure_message, metadata_value

pytestmark = pytest.mark.integration

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
DAYS = [f"2026-01-0{d}" for d in range(1, 8)]
IO_KEY = "iceberg_io_manager"

#: Builds an asset's output for a partition time window.
Producer = Callable[[dg.AssetExecutionContext], pa.Table]


@pytest.fixture
def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def silver_asset(
    name: str, produce: Producer, metadata: dict[str, Any], partitioned: bool = True
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        key_prefix="silver",
        partitions_def=PARTITIONS if partitioned else None,
        metadata=metadata,
        io_manager_key=IO_KEY,
    )
    def _asset(context: dg.AssetExecutionContext) -> pa.Table:
        return produce(context)

    return _asset


def run(
    assets: Sequence[dg.AssetsDefinition],
    io_manager: IcebergIOManager,
    days: Sequence[str] | None = None,
    raise_on_error: bool = True,
    selection: Sequence[dg.AssetsDefinition] | None = None,
) -> dg.ExecuteInProcessResult:
    """One run; a list of days runs as one ranged run (a single-run backfill)."""
    tags = {}
    if days:
        tags = {
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[-1],
        }
    return dg.materialize(
        list(assets),
        resources={IO_KEY: io_manager},
        tags=tags,
        raise_on_error=raise_on_error,
        selection=list(selection) if selection else None,
    )


def daily_rows(version: str, per_day: int = 3, extra: dict[str, Any] | None = None) -> Producer:
    """``per_day`` rows for every day of the run's window, tagged with ``version``."""

    def produce(context: dg.AssetExecutionContext) -> pa.Table:
        window = context.partition_time_window
        rows: dict[str, list[Any]] = {"id": [], "event_date": [], "amount": [], "version": []}
        day = window.start.date()
        while day < window.end.date():
            for i in range(per_day):
                rows["id"].append(f"{day.isoformat()}-{i}")
                rows["event_date"].append(day)
                rows["amount"].append(i * 10)
                rows["version"].append(version)
            day += timedelta(days=1)
        schema = pa.schema(
            [
                ("id", pa.string()),
                ("event_date", pa.date32()),
                ("amount", pa.int64()),
                ("version", pa.string()),
            ]
        )
        table = pa.table(rows, schema=schema)
        for column, (arrow_type, value) in (extra or {}).items():
            table = table.append_column(
                pa.field(column, arrow_type), pa.array([value] * table.num_rows, arrow_type)
            )
        return table

    return produce


def load(io_manager: IcebergIOManager, name: str) -> Table:
    return io_manager.catalog.load().load_table(("silver", name))


def current_snapshot_id(table: Table) -> int:
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return snapshot.snapshot_id


def summary_of(table: Table) -> dict[str, str]:
    """The current snapshot's summary properties (our own and pyiceberg's)."""
    snapshot = table.current_snapshot()
    assert snapshot is not None
    assert snapshot.summary is not None
    return dict(snapshot.summary.additional_properties)


def versions_by_day(table: Table) -> dict[str, set[str]]:
    data = table.scan().to_arrow().to_pylist()
    out: dict[str, set[str]] = {}
    for row in data:
        out.setdefault(row["event_date"].isoformat(), set()).add(row["version"])
    return out


def rows_by_day(table: Table) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in table.scan(selected_fields=("event_date",)).to_arrow().to_pylist():
        key = row["event_date"].isoformat()
        out[key] = out.get(key, 0) + 1
    return out


def test_overwrite_one_partition_leaves_the_others(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    meta = {"partition_expr": "event_date"}
    for day in DAYS[:3]:
        run([silver_asset(table_name, daily_rows("a"), meta)], io_manager, [day])
    result = run([silver_asset(table_name, daily_rows("b"), meta)], io_manager, [DAYS[1]])

    table = load(io_manager, table_name)
    assert versions_by_day(table) == {DAYS[0]: {"a"}, DAYS[1]: {"b"}, DAYS[2]: {"a"}}
    assert rows_by_day(table) == {DAYS[0]: 3, DAYS[1]: 3, DAYS[2]: 3}
    # Identity partitioning on the DATE column.
    spec_fields = table.spec().fields
    assert [type(f.transform) for f in spec_fields] == [IdentityTransform]
    node = f"silver__{table_name}"
    assert metadata_value(result, node, "dagster/row_count") == 3
    assert metadata_value(result, node, "dagster/table_name") == f"lakehouse.silver.{table_name}"
    columns = metadata_value(result, node, "dagster/column_schema").columns
    assert [c.name for c in columns] == ["id", "event_date", "amount", "version"]
    assert metadata_value(result, node, "snapshot_id") == str(current_snapshot_id(table))


def test_range_run_replaces_exactly_its_partitions_in_one_commit(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    meta = {"partition_expr": "event_date"}
    run([silver_asset(table_name, daily_rows("a"), meta)], io_manager, DAYS[:5])
    commits_before = len(load(io_manager, table_name).metadata.metadata_log)

    result = run(
        [silver_asset(table_name, daily_rows("b", per_day=2), meta)], io_manager, DAYS[1:4]
    )

    table = load(io_manager, table_name)
    assert versions_by_day(table) == {
        DAYS[0]: {"a"},
        DAYS[1]: {"b"},
        DAYS[2]: {"b"},
        DAYS[3]: {"b"},
        DAYS[4]: {"a"},
    }
    assert rows_by_day(table) == {DAYS[0]: 3, DAYS[1]: 2, DAYS[2]: 2, DAYS[3]: 2, DAYS[4]: 3}
    # One catalog commit (one new metadata file), even though it holds a delete and an append.
    assert len(table.metadata.metadata_log) == commits_before + 1
    summary = summary_of(table)
    assert summary[PARTITION_KEYS_PROPERTY] == ",".join(DAYS[1:4])
    assert summary[RUN_ID_PROPERTY] == result.run_id


def test_replaying_the_same_input_gives_identical_content(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    asset = silver_asset(table_name, daily_rows("a"), {"partition_expr": "event_date"})
    run([asset], io_manager, DAYS[:2])
    first = load(io_manager, table_name).scan().to_arrow().sort_by("id")
    run([asset], io_manager, DAYS[:2])
    run([asset], io_manager, DAYS[1:2])
    second = load(io_manager, table_name).scan().to_arrow().sort_by("id")
    assert second.num_rows == 6
    assert second.equals(first)


def _orders(rows: list[tuple[str, int, str, datetime]]) -> pa.Table:
    schema = pa.schema(
        [
            ("order_id", pa.string()),
            ("version", pa.int64()),
            ("status", pa.string()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    return pa.table(
        {
            "order_id": [r[0] for r in rows],
            "version": [r[1] for r in rows],
            "status": [r[2] for r in rows],
            "updated_at": [r[3] for r in rows],
        },
        schema=schema,
    )


def test_upsert_latest_version_wins_and_is_replay_safe(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    at = datetime(2026, 1, 2, 10, tzinfo=UTC)
    batches = iter(
        [
            # Two versions of A in one input: only v2 stays.
            _orders([("A", 1, "created", at), ("A", 2, "paid", at), ("B", 1, "created", at)]),
            # A late, older version of A arrives, and a newer B.
            _orders([("A", 1, "created", at), ("B", 3, "shipped", at)]),
            # The same input replayed.
            _orders([("A", 1, "created", at), ("B", 3, "shipped", at)]),
        ]
    )
    meta = {
        "partition_expr": "updated_at",
        "write_mode": "upsert",
        "primary_key": ["order_id"],
        "sequence_column": "version",
    }
    asset = silver_asset(table_name, lambda _: next(batches), meta)
    node = f"silver__{table_name}"

    first = run([asset], io_manager, [DAYS[1]])
    table = load(io_manager, table_name)
    assert [type(f.transform) for f in table.spec().fields] == [DayTransform]
    rows = sorted(
        table.scan().to_arrow().select(["order_id", "version", "status"]).to_pylist(), key=str
    )
    assert rows == [
        {"order_id": "A", "version": 2, "status": "paid"},
        {"order_id": "B", "version": 1, "status": "created"},
    ]
    assert metadata_value(first, node, "input_duplicates_dropped") == 1

    second = run([asset], io_manager, [DAYS[1]])
    table = load(io_manager, table_name)
    versions = {r["order_id"]: r["version"] for r in table.scan().to_arrow().to_pylist()}
    assert versions == {"A": 2, "B": 3}
    assert table.scan().to_arrow().num_rows == 2
    assert metadata_value(second, node, "rows_skipped_not_newer") == 1
    assert metadata_value(second, node, "rows_updated") == 1

    snapshot_before = current_snapshot_id(table)
    third = run([asset], io_manager, [DAYS[1]])
    table = load(io_manager, table_name)
    assert {r["order_id"]: r["version"] for r in table.scan().to_arrow().to_pylist()} == versions
    assert metadata_value(third, node, "rows_skipped_not_newer") == 2
    # Nothing newer: no new snapshot.
    assert current_snapshot_id(table) == snapshot_before


def test_new_optional_column_evolves_the_schema(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    meta = {"partition_expr": "event_date"}
    run([silver_asset(table_name, daily_rows("a"), meta)], io_manager, [DAYS[0]])
    produce = daily_rows("b", extra={"channel": (pa.string(), "web")})
    result = run([silver_asset(table_name, produce, meta)], io_manager, [DAYS[1]])

    table = load(io_manager, table_name)
    assert table.schema().find_field("channel").optional
    by_day = {
        (r["event_date"].isoformat(), r["channel"]) for r in table.scan().to_arrow().to_pylist()
    }
    assert by_day == {(DAYS[0], None), (DAYS[1], "web")}
    node = f"silver__{table_name}"
    columns = [c.name for c in metadata_value(result, node, "dagster/column_schema").columns]
    assert columns[-1] == "channel"
    assert metadata_value(result, node, "schema_changes") == ["added column channel (string)"]

    # An older producer without the new column still writes (the column is optional).
    run([silver_asset(table_name, daily_rows("c"), meta)], io_manager, [DAYS[2]])
    assert rows_by_day(load(io_manager, table_name))[DAYS[2]] == 3


def test_narrowing_change_fails_naming_table_and_column(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    meta = {"partition_expr": "event_date"}
    run([silver_asset(table_name, daily_rows("a"), meta)], io_manager, [DAYS[0]])

    def narrowed(context: dg.AssetExecutionContext) -> pa.Table:
        table = daily_rows("b")(context)
        return table.set_column(2, "amount", table.column("amount").cast(pa.int32()))

    result = run(
        [silver_asset(table_name, narrowed, meta)], io_manager, [DAYS[1]], raise_on_error=False
    )
    assert not result.success
    message = failure_message(result)
    assert f"lakehouse.silver.{table_name}" in message
    assert "'amount'" in message
    assert "narrowing from long to int" in message
    # Nothing was written for the failed day.
    assert rows_by_day(load(io_manager, table_name)) == {DAYS[0]: 3}


def test_snapshot_summary_carries_run_partitions_and_asset_properties(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    offsets = {"plain-events": {"0": [10, 42]}}

    @dg.asset(
        name=table_name,
        key_prefix="silver",
        partitions_def=PARTITIONS,
        metadata={"partition_expr": "event_date"},
        io_manager_key=IO_KEY,
    )
    def with_offsets(context: dg.AssetExecutionContext) -> dg.Output[pa.Table]:
        return dg.Output(
            daily_rows("a")(context),
            metadata={"snapshot_properties": {"kafka.offsets": json.dumps(offsets)}},
        )

    result = run([with_offsets], io_manager, [DAYS[3]])
    summary = summary_of(load(io_manager, table_name))
    assert summary[RUN_ID_PROPERTY] == result.run_id
    assert summary[PARTITION_KEYS_PROPERTY] == DAYS[3]
    assert summary["dagster.asset_key"] == f"silver/{table_name}"
    assert json.loads(summary["kafka.offsets"]) == offsets


def test_load_input_returns_only_the_requested_partitions(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    upstream = silver_asset(table_name, daily_rows("a"), {"partition_expr": "event_date"})
    seen: dict[str, list[str]] = {}

    @dg.asset(
        key_prefix="gold",
        name=f"{table_name}_days",
        partitions_def=PARTITIONS,
        ins={"rows": dg.AssetIn(key=upstream.key)},
        io_manager_key="mem",
    )
    def downstream(context: dg.AssetExecutionContext, rows: pa.Table) -> int:
        seen[context.run.run_id] = sorted(
            {d.isoformat() for d in rows.column("event_date").to_pylist()}
        )
        return rows.num_rows

    @dg.asset(
        key_prefix="gold",
        name=f"{table_name}_all",
        ins={"rows": dg.AssetIn(key=upstream.key)},
        io_manager_key="mem",
    )
    def unpartitioned(rows: pa.Table) -> int:
        return rows.num_rows

    run([upstream], io_manager, DAYS[:5])
    resources = {IO_KEY: io_manager, "mem": dg.InMemoryIOManager()}
    one = dg.materialize(
        [upstream, downstream], resources=resources, partition_key=DAYS[2], selection=[downstream]
    )
    assert seen[one.run_id] == [DAYS[2]]
    ranged = dg.materialize(
        [upstream, downstream],
        resources=resources,
        selection=[downstream],
        tags={
            "dagster/asset_partition_range_start": DAYS[1],
            "dagster/asset_partition_range_end": DAYS[3],
        },
    )
    assert seen[ranged.run_id] == DAYS[1:4]
    whole = dg.materialize(
        [upstream, unpartitioned], resources=resources, selection=[unpartitioned]
    )
    assert whole.output_for_node(f"gold__{table_name}_all") == 15


def test_unpartitioned_asset_overwrites_the_whole_table(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    def fixed(version: str, n: int) -> Producer:
        return lambda _: pa.table({"id": list(range(n)), "version": [version] * n})

    run([silver_asset(table_name, fixed("a", 5), {}, partitioned=False)], io_manager)
    run([silver_asset(table_name, fixed("b", 2), {}, partitioned=False)], io_manager)
    data = load(io_manager, table_name).scan().to_arrow()
    assert data.num_rows == 2
    assert set(data.column("version").to_pylist()) == {"b"}


def test_rows_outside_the_run_window_are_refused(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    def stray(context: dg.AssetExecutionContext) -> pa.Table:
        table = daily_rows("a")(context)
        return table.set_column(
            1, "event_date", pa.array([date(2026, 1, 6)] * table.num_rows, pa.date32())
        )

    result = run(
        [silver_asset(table_name, stray, {"partition_expr": "event_date"})],
        io_manager,
        [DAYS[0]],
        raise_on_error=False,
    )
    message = failure_message(result)
    assert f"lakehouse.silver.{table_name}" in message
    assert "3 of 3 rows have event_date outside the run's partitions (2026-01-01)" in message


def test_commit_conflicts_are_retried_then_reported(
    io_manager: IcebergIOManager, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset = silver_asset(table_name, daily_rows("a"), {"partition_expr": "event_date"})
    real_attempt = arrow_writes.write_attempt
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise CommitFailedException("concurrent update")
        return real_attempt(*args)

    monkeypatch.setattr(arrow_writes, "write_attempt", flaky)
    result = run([asset], io_manager, [DAYS[0]])
    assert metadata_value(result, f"silver__{table_name}", "commit_attempts") == 3
    assert rows_by_day(load(io_manager, table_name)) == {DAYS[0]: 3}

    def always(*args: Any) -> Any:
        raise CommitFailedException("concurrent update")

    monkeypatch.setattr(arrow_writes, "write_attempt", always)
    failed = run([asset], io_manager, [DAYS[1]], raise_on_error=False)
    message = failure_message(failed)
    assert f"lakehouse.silver.{table_name}" in message
    assert "failed 6 times" in message
    assert IcebergCommitError.__name__ in message


def test_concurrent_writers_of_different_partitions_all_land(
    io_manager: IcebergIOManager, table_name: str
) -> None:
    """Real commit conflicts: writers racing on one table, each replacing its own day."""
    meta = {"partition_expr": "event_date"}
    run([silver_asset(table_name, daily_rows("a"), meta)], io_manager, [DAYS[0]])

    def write(day: str) -> int:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        window = dg.TimeWindow(start, start + timedelta(days=1))
        rows = pa.table(
            {
                "id": [f"{day}-{i}" for i in range(4)],
                "event_date": pa.array([start.date()] * 4, pa.date32()),
                "amount": pa.array([1, 2, 3, 4], pa.int64()),
                "version": ["c"] * 4,
            }
        )
        request = WriteRequest(
            identifier=("silver", table_name),
            table_name=f"lakehouse.silver.{table_name}",
            partition_expr="event_date",
            time_window=window,
            partition_keys=[day],
            partitions_def=PARTITIONS,
            snapshot_properties={RUN_ID_PROPERTY: f"thread-{day}"},
        )
        return io_manager.write_arrow(request, rows).attempts

    days = [*DAYS[1:5], DAYS[1], DAYS[2]]
    with ThreadPoolExecutor(max_workers=len(days)) as pool:
        attempts = list(pool.map(write, days))

    table = load(io_manager, table_name)
    assert rows_by_day(table) == {DAYS[0]: 3, **{day: 4 for day in DAYS[1:5]}}
    assert versions_by_day(table)[DAYS[3]] == {"c"}
    assert all(a >= 1 for a in attempts)
