"""Run branches on the real catalog: written beside main, published by fast-forward only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

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

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])


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
