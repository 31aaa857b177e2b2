"""Write-audit-publish on the real stack: no reader of main ever sees rows that failed a
blocking check or a half-finished run.

Each scenario records, for every silver table of the dataset, main's snapshot and rows
(read through pyiceberg and through Spark) before a run, and requires them unchanged
after a run that must not publish; the run's branch must hold what it wrote. A passing
run publishes every table, and a rerun after a failure converges.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lakehouse_assets.silver.assets import RECONCILIATION_CHECK
from resources.iceberg.branches import BRANCH_PREFIX, run_branch
from resources.iceberg.io_manager import RUN_ID_PROPERTY
from resources.settings import PROJECT_ROOT
from tests.integration.conftest import failure_message
from tests.integration.test_silver import (
    SilverDataset,
    _at,
    _check,
    _day,
    _make_dataset,
    order_event,
)

pytestmark = pytest.mark.integration

CONTRACT = PROJECT_ROOT / "contracts" / "purchase_orders.yaml"


@pytest.fixture
def orders(stack: Any, spark: Any) -> SilverDataset:
    return _make_dataset("contracts/purchase_orders.yaml")


def _tables(data: SilverDataset) -> list[str]:
    from lakehouse_assets.contracts.loading import load_contract

    contract = load_contract(data.settings.contract_path(data.name))
    return [*contract.tables, contract.quarantine_table]


def _main_state(data: SilverDataset, spark: Any) -> dict[str, Any]:
    """Per table: main's snapshot id, its rows through pyiceberg and through Spark."""
    catalog = data.resources["iceberg"].load()
    namespace = data.settings.namespace("silver")
    state: dict[str, Any] = {}
    for table in _tables(data):
        if not catalog.table_exists((namespace, table)):
            state[table] = None
            continue
        loaded = catalog.load_table((namespace, table))
        current = loaded.current_snapshot()
        arrow = loaded.scan().to_arrow()
        rows = sorted(map(repr, arrow.to_pylist()))
        spark_rows = spark.sql(f"SELECT * FROM lakehouse.`{namespace}`.`{table}`").count()
        state[table] = (current.snapshot_id if current else None, rows, spark_rows)
    return state


def _branch_rows(data: SilverDataset, table: str, branch: str) -> int:
    catalog = data.resources["iceberg"].load()
    loaded = catalog.load_table((data.settings.namespace("silver"), table))
    assert branch in loaded.metadata.refs, f"{table} has no branch {branch}"
    return loaded.scan().use_ref(branch).to_arrow().num_rows


def _first_day(data: SilverDataset) -> None:
    """Day 0 published by a passing run: main holds data before each scenario."""
    data.produce([(order_event(i, 1, _at(0, 8 + i)), _at(0, 8 + i)) for i in range(1, 4)])
    data.land(_day(0), _day(0))
    first = data.silver(_day(0))
    assert first.success, "the baseline run failed"


def _more_versions(data: SilverDataset) -> None:
    data.produce(
        [(order_event(i, 2, _at(0, 14 + i), status="paid"), _at(0, 14 + i)) for i in range(1, 4)]
        + [(order_event(9, 1, _at(0, 20)), _at(0, 20))]
    )
    data.land(_day(0), _day(0))


def _contract_with(tmp_path: Path, old: str, new: str) -> Path:
    text = CONTRACT.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / "purchase_orders.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_passing_run_publishes_every_table_and_leaves_no_branch(
    orders: SilverDataset, spark: Any
) -> None:
    _first_day(orders)
    before = _main_state(orders, spark)
    _more_versions(orders)
    result = orders.silver(_day(0))
    assert result.success
    after = _main_state(orders, spark)
    for table in ("order_events", "orders", "order_lines", "customers"):
        assert after[table][0] != before[table][0], f"{table} was not published"
    statuses = {r["order_id"]: r["status"] for r in orders.table("orders").to_pylist()}
    assert statuses == {
        "PO-000001": "paid",
        "PO-000002": "paid",
        "PO-000003": "paid",
        "PO-000009": "created",
    }
    catalog = orders.resources["iceberg"].load()
    for table in _tables(orders):
        refs = catalog.load_table((orders.settings.namespace("silver"), table)).metadata.refs
        assert not [r for r in refs if r.startswith(BRANCH_PREFIX)], f"{table} kept a branch"
        summary = catalog.load_table(
            (orders.settings.namespace("silver"), table)
        ).current_snapshot()
        assert summary is not None
        assert summary.summary is not None
        assert summary.summary.additional_properties.get(RUN_ID_PROPERTY) == result.run_id


def test_a_column_type_that_breaks_the_contract_never_reaches_main(
    orders: SilverDataset, spark: Any, tmp_path: Path
) -> None:
    _first_day(orders)
    before = _main_state(orders, spark)
    # The contract now declares customers.name an integer; the table builder writes strings.
    orders.use_contract(
        _contract_with(
            tmp_path,
            "      - name: name\n        logicalType: string\n        required: true\n"
            "      - name: country\n",
            "      - name: name\n        logicalType: integer\n        required: true\n"
            "      - name: country\n",
        )
    )
    _more_versions(orders)
    result = orders.silver(_day(0))
    assert not result.success
    schema = [
        e
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == "contract_schema"
        and e.asset_check_evaluation_data.asset_key == dg.AssetKey(["silver", "customers"])
    ]
    assert schema
    assert not schema[-1].asset_check_evaluation_data.passed
    assert _main_state(orders, spark) == before, "main changed after a failed schema check"
    branch = run_branch(result.run_id)
    assert _branch_rows(orders, "customers", branch) >= 1
    assert _branch_rows(orders, "orders", branch) == 4, "the branch lost the rejected rows"

    # A data engineer who accepts the rows anyway publishes the branch by hand.
    published = _branches_command(orders, "publish", branch)
    assert published.returncode == 0, published.stderr
    assert f"published {orders.settings.namespace('silver')}.orders: main is" in published.stdout
    assert len(orders.table("orders")) == 4
    assert "no run branches" in _branches_command(orders, "list").stdout


def test_a_failing_row_count_bound_leaves_main_as_before(
    orders: SilverDataset, spark: Any, tmp_path: Path
) -> None:
    _first_day(orders)
    before = _main_state(orders, spark)
    orders.use_contract(
        _contract_with(
            tmp_path,
            "        mustBeBetween: [0, 5000000]\n        severity: warning\n",
            "        mustBeBetween: [0, 2]\n        severity: error\n",
        )
    )
    _more_versions(orders)
    result = orders.silver(_day(0))
    assert not result.success
    row_count = _check(result, "contract_row_count")
    assert not row_count.passed
    assert _main_state(orders, spark) == before
    branch = run_branch(result.run_id)
    assert _branch_rows(orders, "orders", branch) == 4

    listed = _branches_command(orders, "list")
    assert listed.returncode == 0, listed.stderr
    orders_line = [line for line in listed.stdout.splitlines() if ".orders  " in line]
    assert orders_line, listed.stdout
    assert branch in orders_line[0]
    assert "4 rows (main 3)  publishable" in orders_line[0]
    dropped = _branches_command(orders, "drop", branch)
    assert dropped.returncode == 0, dropped.stderr
    assert "no run branches" in _branches_command(orders, "list").stdout
    assert _main_state(orders, spark) == before

    # The bound fixed, a rerun publishes.
    orders.use_contract(CONTRACT)
    rerun = orders.silver(_day(0))
    assert rerun.success
    assert len(orders.table("orders")) == 4


def _branches_command(
    data: SilverDataset, *arguments: str, gold: bool = False
) -> subprocess.CompletedProcess[str]:
    """``lakehouse-branches <command> --dataset <name>`` (or ``--gold``) as a user runs it."""
    command, *rest = arguments
    which = ["--gold"] if gold else ["--dataset", data.name]
    return subprocess.run(
        [str(Path(sys.executable).parent / "lakehouse-branches"), command, *which, *rest],
        cwd=PROJECT_ROOT,
        env=data.environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


_CHILD = textwrap.dedent(
    """
    import dagster as dg
    from lakehouse_assets.silver.assets import build_silver_asset
    from resources.environments import build_resources
    from resources.settings import load_settings

    settings = load_settings()
    dg.materialize(
        [build_silver_asset(settings, {name!r})],
        resources=build_resources(settings),
        tags={{
            "dagster/asset_partition_range_start": {day!r},
            "dagster/asset_partition_range_end": {day!r},
        }},
    )
    """
)


def test_a_run_killed_between_table_writes_leaves_main_as_before_and_a_rerun_converges(
    orders: SilverDataset, spark: Any
) -> None:
    _first_day(orders)
    before = _main_state(orders, spark)
    _more_versions(orders)

    environ = dict(orders.environ, LAKEHOUSE__SPARK__SHARED_DRIVER="false")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(name=orders.name, day=_day(0))],
        cwd=PROJECT_ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    catalog = orders.resources["iceberg"].load()
    events = (orders.settings.namespace("silver"), "order_events")
    orders_table = (orders.settings.namespace("silver"), "orders")
    deadline = time.monotonic() + 600
    killed_at: str | None = None
    try:
        while time.monotonic() < deadline and child.poll() is None:
            refs = catalog.load_table(events).metadata.refs
            branches = [r for r in refs if r.startswith(BRANCH_PREFIX)]
            written = [
                b
                for b in branches
                if catalog.load_table(events).snapshot_by_name(b) is not None
                and catalog.load_table(events).snapshot_by_name(b).parent_snapshot_id is not None
            ]
            if written and before["order_events"][0] != refs[written[0]].snapshot_id:
                os.killpg(child.pid, signal.SIGKILL)
                killed_at = written[0]
                break
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(60)
    assert killed_at is not None, "the run ended before order_events was written to its branch"
    assert child.returncode == -signal.SIGKILL
    assert _main_state(orders, spark) == before, "main changed after the run was killed"
    assert _branch_rows(orders, "order_events", killed_at) > len(orders.table("order_events"))
    loaded_orders = catalog.load_table(orders_table)
    assert loaded_orders.current_snapshot() is not None
    assert loaded_orders.current_snapshot().snapshot_id == before["orders"][0]

    rerun = orders.silver(_day(0))
    assert rerun.success
    statuses = {r["order_id"]: r["status"] for r in orders.table("orders").to_pylist()}
    assert statuses["PO-000001"] == "paid"
    assert "PO-000009" in statuses
    assert _check(rerun, RECONCILIATION_CHECK).passed


# --------------------------------------------------------------------------- gold

#: A business rule a reviewer adds to gold: no order above the review limit is reported
#: before someone looked at it (severity error: it blocks).
_REVIEW_TEST = """-- an order above the review limit waits for a person before gold reports it
select order_id, total from {{ ref('fct_orders') }} where total > 1000
"""


def _gold_state(lakehouse: Any, spark: Any) -> dict[str, Any]:
    """Per gold table: main's snapshot id and rows through pyiceberg and through Spark."""
    catalog = lakehouse.resources["iceberg"].load()
    namespace = lakehouse.dataset.settings.namespace("gold")
    state: dict[str, Any] = {}
    for _, table in catalog.list_tables(namespace):
        loaded = catalog.load_table((namespace, table))
        current = loaded.current_snapshot()
        rows = sorted(map(repr, loaded.scan().to_arrow().to_pylist()))
        spark_rows = sorted(
            map(repr, spark.sql(f"SELECT * FROM lakehouse.`{namespace}`.`{table}`").collect())
        )
        state[table] = (current.snapshot_id if current else None, rows, spark_rows)
    return state


def _gold_run(lakehouse: Any, day: str) -> dg.ExecuteInProcessResult:
    gold = lakehouse.gold_assets()
    return dg.materialize(
        [*gold, lakehouse.silver_asset()],
        selection=lakehouse.gold_selection(),
        resources=lakehouse.resources,
        partition_key=day,
        raise_on_error=False,
    )


def test_a_failing_dbt_test_leaves_gold_main_as_before_and_a_rerun_converges(
    stack: Any, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import uuid

    from tests.integration.test_gold import Lakehouse

    project = tmp_path / "dbt"
    shutil.copytree(PROJECT_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    review = project / "tests" / "assert_no_order_above_review_limit.sql"
    review.write_text(_REVIEW_TEST)
    monkeypatch.setenv("LAKEHOUSE__DBT__PROJECT_DIR", str(project))
    monkeypatch.setenv("LAKEHOUSE__CATALOG__NAMESPACES__GOLD", f"gold_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("LAKEHOUSE__PARTITIONS__START_DATE", _day(-5))
    lakehouse = Lakehouse(_make_dataset("contracts/purchase_orders.yaml"))
    data = lakehouse.dataset

    data.produce([(order_event(i, 1, _at(0, 8 + i)), _at(0, 8 + i)) for i in range(1, 4)])
    lakehouse.run(_day(0))
    before = _gold_state(lakehouse, spark)
    assert len(before["fct_orders"][1]) == 3

    # Silver accepts a large order (its contract has no limit); gold's review test fails.
    big = order_event(9, 1, _at(0, 20), lines=(("SKU-9", 100, "20.00", "0"),))
    data.produce([(big, _at(0, 20))])
    data.land(_day(0), _day(0))
    assert data.silver(_day(0)).success
    failed = _gold_run(lakehouse, _day(0))
    assert not failed.success
    assert "assert_no_order_above_review_limit" in failure_message(failed)
    assert _gold_state(lakehouse, spark) == before, "main of a gold table changed"

    branch = run_branch(failed.run_id)
    catalog = lakehouse.resources["iceberg"].load()
    fct_orders = catalog.load_table((data.settings.namespace("gold"), "fct_orders"))
    rejected = fct_orders.scan().use_ref(branch).to_arrow().to_pylist()
    assert {r["order_id"] for r in rejected} == {f"PO-00000{i}" for i in (1, 2, 3, 9)}
    on_spark = spark.sql(
        f"SELECT order_id FROM lakehouse.`{data.settings.namespace('gold')}`.fct_orders "
        f"VERSION AS OF '{branch}'"
    ).collect()
    assert len(on_spark) == 4
    listed = _branches_command(data, "list", gold=True)
    assert f"fct_orders  {branch}" in listed.stdout, listed.stdout + listed.stderr

    # The reviewer accepts large orders (the test goes); a rerun publishes and converges.
    review.unlink()
    rerun = _gold_run(lakehouse, _day(0))
    assert rerun.success, failure_message(rerun)
    after = _gold_state(lakehouse, spark)
    assert {r.split("'order_id': '")[1][:9] for r in after["fct_orders"][1]} == {
        f"PO-00000{i}" for i in (1, 2, 3, 9)
    }
    published = catalog.load_table((data.settings.namespace("gold"), "fct_orders"))
    assert run_branch(rerun.run_id) not in published.metadata.refs
    # dbt's commits carry the run id like the IO manager's; main now is the rerun's.
    for table, run in ((fct_orders, failed), (published, rerun)):
        head = table.snapshot_by_id(
            table.metadata.refs[branch if run is failed else "main"].snapshot_id
        )
        assert head is not None
        assert head.summary is not None
        assert head.summary.additional_properties.get(RUN_ID_PROPERTY) == run.run_id
    dropped = _branches_command(data, "drop", branch, gold=True)
    assert dropped.returncode == 0, dropped.stderr
    assert "no run branches" in _branches_command(data, "list", gold=True).stdout
