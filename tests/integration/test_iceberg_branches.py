"""Run branches on the real catalog: written beside main, published by fast-forward only."""

# No `from __future__ import annotations`: Dagster reads the assets' annotations.

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from pyiceberg.table import Table

from resources.iceberg.branches import (
    BranchPublishError,
    drop_branch,
    ensure_branch,
    publish,
    run_branch,
    run_branches,
    stale_branches,
)
from resources.iceberg.io_manager import RUN_ID_PROPERTY
from tests.integration.conftest import metadata_value
from tests.integration.test_iceberg_io_manager import (
    DAYS,
    IO_KEY,
    PARTITIONS,
    daily_rows,
    load,
    rows_by_day,
    run,
)
from tests.integration.test_iceberg_spark_io import _orders, to_spark

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])


@pytest.fixture
def table_name() -> str:
    return f"b_{uuid.uuid4().hex[:10]}"


def rows(*ids: int) -> pa.Table:
    return pa.table({"id": list(ids), "v": [f"v{i}" for i in ids]}, schema=SCHEMA)


@pytest.fixture
def table(resources: Any) -> Table:
    catalog = resources.iceberg.load()
    catalog.create_namespace_if_not_exists("branches_test")
    return catalog.create_table(f"branches_test.t_{uuid.uuid4().hex[:10]}", schema=SCHEMA)


def ids(table: Table, ref: str | None = None) -> list[int]:
    scan = table.refresh().scan()
    if ref is not None:
        scan = scan.use_ref(ref)
    return sorted(scan.to_arrow().column("id").to_pylist())


def test_run_branch_names_are_spark_identifiers() -> None:
    assert run_branch("3f2a9c1e-0b7d-4a52-9e0f-1d2c3b4a5f60") == (
        "audit_3f2a9c1e0b7d4a529e0f1d2c3b4a5f60"
    )
    with pytest.raises(ValueError, match="no letter or digit"):
        run_branch("---")


def test_writes_to_a_branch_stay_off_main_until_published(table: Table) -> None:
    table.append(rows(1, 2))
    before = table.refresh().current_snapshot()
    assert before is not None
    branch = run_branch(str(uuid.uuid4()))
    table = ensure_branch(table, branch)
    table.append(rows(3), branch=branch, snapshot_properties={"lakehouse.run_id": "r1"})
    table.delete("id = 1", branch=branch)

    assert ids(table) == [1, 2], "main moved before publish"
    assert ids(table, branch) == [2, 3]

    head = publish(table.refresh(), branch)
    table = table.refresh()
    current = table.current_snapshot()
    assert current is not None
    assert current.snapshot_id == head
    assert ids(table) == [2, 3]
    lineage = [s for s in table.snapshots() if s.snapshot_id != before.snapshot_id]
    assert any(s.summary and s.summary.get("lakehouse.run_id") == "r1" for s in lineage)
    assert publish(table, branch) == head, "publishing twice is a no-op"


def test_a_table_without_snapshots_branches_from_an_empty_main(table: Table) -> None:
    branch = run_branch(str(uuid.uuid4()))
    table = ensure_branch(table, branch)
    assert branch in table.metadata.refs
    table.append(rows(7), branch=branch)
    assert ids(table) == [], "main got the rows"
    publish(table.refresh(), branch)
    assert ids(table) == [7]


def test_publish_refuses_when_main_moved_and_leaves_main_alone(table: Table) -> None:
    table.append(rows(1))
    branch = run_branch(str(uuid.uuid4()))
    table = ensure_branch(table, branch)
    table.append(rows(2), branch=branch)
    table.refresh().append(rows(9))  # another writer commits to main meanwhile
    main_before = table.refresh().current_snapshot()

    with pytest.raises(BranchPublishError, match="main moved"):
        publish(table.refresh(), branch)
    table = table.refresh()
    assert table.current_snapshot() == main_before
    assert ids(table) == [1, 9]
    assert ids(table, branch) == [1, 2], "the rejected rows stay on the branch"


def test_stale_run_branches_are_found_by_age_and_dropped(table: Table) -> None:
    table.append(rows(1))
    old, new = run_branch(str(uuid.uuid4())), run_branch(str(uuid.uuid4()))
    for branch in (old, new):
        table = ensure_branch(table, branch)
        table.append(rows(2), branch=branch)
    table = table.refresh()
    assert {b.name for b in run_branches(table)} == {old, new}

    later = datetime.now(UTC) + timedelta(days=8)
    assert {b.name for b in stale_branches(table, timedelta(days=7), later, keep=[new])} == {old}
    assert stale_branches(table, timedelta(days=7)) == []
    assert drop_branch(table, old)
    assert not drop_branch(table.refresh(), old)
    assert {b.name for b in run_branches(table.refresh())} == {new}
    assert ids(table) == [1]
    with pytest.raises(ValueError, match="main is never dropped"):
        drop_branch(table, "main")


# The IO manager writes a run's outputs to its branch ------------------------------------


def _branch_ids(io_manager: Any, name: str, branch: str | None) -> list[tuple[str, int, str]]:
    table = load(io_manager, name)
    scan = table.scan()
    if branch is not None:
        scan = scan.use_ref(branch)
    return sorted((r["order_id"], r["version"], r["status"]) for r in scan.to_arrow().to_pylist())


def _spark_ids(spark: Any, full_name: str) -> list[tuple[str, int, str]]:
    rows = spark.sql(f"SELECT order_id, version, status FROM {full_name}").collect()
    return sorted((r.order_id, r.version, r.status) for r in rows)


UPSERT = {
    "partition_expr": "updated_at",
    "write_mode": "upsert",
    "primary_key": ["order_id"],
    "sequence_column": "version",
}


@pytest.mark.parametrize("engine", ["arrow", "spark"])
def test_io_manager_upserts_onto_the_run_branch_and_main_stays_until_published(
    engine: str, spark: Any, io_manager: Any, table_name: str
) -> None:
    at = datetime(2026, 1, 2, 10, tzinfo=UTC)
    batches = iter(
        [
            [("A", 1, "created", at), ("B", 1, "created", at)],
            [("A", 2, "paid", at), ("C", 1, "created", at)],
        ]
    )

    def produce(context: dg.AssetExecutionContext) -> Any:
        frame = _orders(spark, next(batches))
        return frame if engine == "spark" else pa.Table.from_pandas(frame.toPandas())

    runs: list[str] = []

    @dg.asset(
        name=table_name,
        key_prefix="silver",
        partitions_def=PARTITIONS,
        io_manager_key=IO_KEY,
        metadata=UPSERT,
    )
    def orders(context: dg.AssetExecutionContext) -> dg.Output[Any]:
        # The first run writes main; the second writes its own branch.
        branch = run_branch(context.run.run_id) if runs else None
        runs.append(context.run.run_id)
        return dg.Output(produce(context), metadata={"branch": branch})

    run([orders], io_manager, [DAYS[1]])
    before = _branch_ids(io_manager, table_name, None)
    assert before == [("A", 1, "created"), ("B", 1, "created")]

    result = run([orders], io_manager, [DAYS[1]])
    branch = run_branch(result.run_id)
    assert metadata_value(result, f"silver__{table_name}", "branch") == branch
    assert _branch_ids(io_manager, table_name, None) == before
    assert _spark_ids(spark, f"lakehouse.silver.{table_name}") == before
    on_branch = [("A", 2, "paid"), ("B", 1, "created"), ("C", 1, "created")]
    assert _branch_ids(io_manager, table_name, branch) == on_branch
    assert _spark_ids(spark, f"lakehouse.silver.{table_name}.branch_{branch}") == on_branch
    assert summary_of_ref(load(io_manager, table_name), branch)[RUN_ID_PROPERTY] == result.run_id

    publish(load(io_manager, table_name), branch)
    assert _branch_ids(io_manager, table_name, None) == on_branch
    assert _spark_ids(spark, f"lakehouse.silver.{table_name}") == on_branch


def summary_of_ref(table: Table, ref: str) -> dict[str, str]:
    snapshot = table.snapshot_by_name(ref)
    assert snapshot is not None
    assert snapshot.summary is not None
    return dict(snapshot.summary.additional_properties)


@pytest.mark.parametrize("engine", ["arrow", "spark"])
def test_io_manager_overwrites_a_day_on_a_new_tables_branch(
    engine: str, spark: Any, io_manager: Any, table_name: str
) -> None:
    @dg.asset(
        name=table_name,
        key_prefix="silver",
        partitions_def=PARTITIONS,
        io_manager_key=IO_KEY,
        metadata={"partition_expr": "event_date"},
    )
    def daily(context: dg.AssetExecutionContext) -> dg.Output[Any]:
        table = daily_rows("a")(context)
        data = to_spark(spark, table) if engine == "spark" else table
        return dg.Output(data, metadata={"branch": run_branch(context.run.run_id)})

    result = run([daily], io_manager, [DAYS[2]])
    branch = run_branch(result.run_id)
    table = load(io_manager, table_name)
    assert table.scan().to_arrow().num_rows == 0, "main of the new table got rows"
    assert table.scan().use_ref(branch).to_arrow().num_rows == 3
    publish(table, branch)
    assert rows_by_day(load(io_manager, table_name)) == {DAYS[2]: 3}


def test_publishing_a_run_is_all_or_none_when_one_tables_main_moved(resources: Any) -> None:
    import logging

    from resources.iceberg.publishing import publish_tables

    catalog = resources.iceberg.load()
    catalog.create_namespace_if_not_exists("branches_test")
    names = [("branches_test", f"p_{uuid.uuid4().hex[:10]}") for _ in range(2)]
    branch = run_branch(str(uuid.uuid4()))
    for name in names:
        table = catalog.create_table(name, schema=SCHEMA)
        table.append(rows(1))
        table = ensure_branch(table.refresh(), branch)
        table.append(rows(2), branch=branch)
    catalog.load_table(names[1]).append(rows(9))  # another writer moves the second main

    log = logging.getLogger("test")
    with pytest.raises(BranchPublishError, match=f"main of branches_test.{names[1][1]} moved"):
        publish_tables(resources.iceberg, names, branch, log)
    assert ids(catalog.load_table(names[0])) == [1], "the first table was published alone"
    assert ids(catalog.load_table(names[1])) == [1, 9]
