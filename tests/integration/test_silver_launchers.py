"""Silver as a launched Spark job (``silver_launcher.kind: pipes_subprocess``) against the
``session`` launcher, on real Kafka, the S3 server, the Iceberg catalog and Spark.

A purchase-orders dataset of its own (generated events with late, out-of-order,
duplicate and malformed records) is landed once. Silver runs over its days in the
test's process (``session``), then, into a silver namespace of its own, as
``spark-submit`` of the job entry point through Dagster Pipes: the tables, the quarantine, the reconciliation, every check result and
each day's metadata must be the same, and the job's own commits must be the tables'
current snapshots. A job killed mid-way leaves every table's ``main`` as it was and
fails the Dagster run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lakehouse_assets.partitions import range_tags
from lakehouse_assets.silver.assets import build_silver_asset
from lakehouse_assets.silver.launched import JOB_FILE, build_launched_silver_asset
from lakehouse_dev.generator.records import generate
from lakehouse_dev.generator.spec import GeneratorSpec
from resources.iceberg.writes import RUN_ID_PROPERTY
from resources.settings import LakehouseSettings, load_settings
from tests.integration.test_silver import DAY, SilverDataset, _dataset_environ, _make_dataset

pytestmark = pytest.mark.integration

#: Metadata naming a run, a snapshot or a moment: different in any two runs.
_VOLATILE = frozenset(
    {"branch", "snapshot_id", "dagster/snapshot_id", "parent_snapshot_id", "committed_at"}
)
SPEC = GeneratorSpec(count=600, days=3, end_date=DAY, seed=19)
FIRST, LAST = SPEC.first_day.isoformat(), DAY.isoformat()


@pytest.fixture(scope="module")
def orders(stack: Any, spark: Any) -> SilverDataset:
    dataset = _make_dataset("contracts/purchase_orders.yaml")
    records = list(generate("purchase_orders", SPEC))
    assert any(record.is_malformed for record in records)
    dataset.produce(
        [(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)) for r in records]
    )
    dataset.land(FIRST, LAST)
    return dataset


@pytest.fixture
def launched_settings(orders: SilverDataset, monkeypatch: pytest.MonkeyPatch) -> LakehouseSettings:
    """The dataset's settings with ``pipes_subprocess`` and a silver namespace of their
    own (the job writes every table afresh); the job, a child process, reads the same
    from its environment."""
    namespace = f"{orders.settings.namespace('silver')}_launched"
    environ = _dataset_environ(
        orders.name, orders.topic, "contracts/purchase_orders.yaml", namespace
    )
    environ["LAKEHOUSE__SILVER_LAUNCHER__KIND"] = "pipes_subprocess"
    for key, value in environ.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    return load_settings("local", environ=environ)


def _tables(orders: SilverDataset, settings: LakehouseSettings) -> dict[str, list[str]]:
    catalog = orders.resources["iceberg"].load()
    namespace = settings.namespace("silver")
    return {
        identifier[-1]: sorted(
            repr(sorted(row.items()))
            for row in catalog.load_table(identifier).scan().to_arrow().to_pylist()
        )
        for identifier in catalog.list_tables(namespace)
    }


def _snapshots(
    orders: SilverDataset, settings: LakehouseSettings
) -> dict[str, dict[str, str] | None]:
    """Each table's current snapshot on main: its summary, or None."""
    catalog = orders.resources["iceberg"].load()
    out: dict[str, dict[str, str] | None] = {}
    namespace = settings.namespace("silver")
    if (namespace,) not in catalog.list_namespaces():
        return out
    for identifier in catalog.list_tables(namespace):
        snapshot = catalog.load_table(identifier).current_snapshot()
        out[identifier[-1]] = (
            None if snapshot is None else dict(snapshot.summary.additional_properties)
        )
    return out


def _seen(result: dg.ExecuteInProcessResult, namespace: str) -> dict[str, Any]:
    """What a run showed: each check result and each day's materialisation metadata,
    its silver namespace named ``<silver>``."""

    def _plain(value: Any) -> Any:
        inner = getattr(value, "value", value)
        if not isinstance(inner, (str, int, float, bool, type(None))):
            inner = repr(inner)
        return inner.replace(namespace, "<silver>") if isinstance(inner, str) else inner

    checks = sorted(
        (
            c.asset_key.to_user_string(),
            c.check_name,
            c.passed,
            c.severity.value,
            c.description,
            sorted((k, _plain(v)) for k, v in c.metadata.items() if k not in _VOLATILE),
        )
        for c in result.get_asset_check_evaluations()
    )
    days = {}
    for event in result.get_asset_materialization_events():
        m = event.step_materialization_data.materialization
        days[f"{m.asset_key.to_user_string()}@{m.partition}"] = sorted(
            (k, _plain(v)) for k, v in m.metadata.items() if k not in _VOLATILE
        )
    return {"checks": checks, "days": days}


def test_the_launched_job_writes_and_reports_what_the_session_launcher_does(
    orders: SilverDataset, launched_settings: LakehouseSettings
) -> None:
    tags = range_tags(FIRST, LAST)
    session = dg.materialize(
        [build_silver_asset(orders.settings, orders.name)],
        resources=orders.resources,
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert session.success
    tables = _tables(orders, orders.settings)
    # Every table has rows, the quarantine (the malformed records) too.
    assert tables
    assert all(tables.values()), {name: len(rows) for name, rows in tables.items()}

    instance = dg.DagsterInstance.ephemeral()
    launched = dg.materialize(
        [build_launched_silver_asset(launched_settings, orders.name)],
        tags=tags,
        instance=instance,
        raise_on_error=False,
    )
    assert launched.success, [e.step_failure_data.error for e in launched.get_step_failure_events()]

    assert _tables(orders, launched_settings) == tables
    # The job wrote them: every table's current snapshot is a commit of the launched run.
    committed = _snapshots(orders, launched_settings)
    assert committed
    assert {t: (s or {}).get(RUN_ID_PROPERTY) for t, s in committed.items()} == {
        t: launched.run_id for t in committed
    }
    expected = _seen(session, orders.settings.namespace("silver"))
    seen = _seen(launched, launched_settings.namespace("silver"))
    assert seen["checks"] == expected["checks"]
    differing = {
        day: sorted(set(seen["days"].get(day, [])) ^ set(entries))
        for day, entries in expected["days"].items()
        if seen["days"].get(day) != entries
    }
    assert seen["days"].keys() == expected["days"].keys()
    assert not differing, differing
    names = {c[1] for c in seen["checks"]}
    assert {"reconciliation", "quarantine_rate_anomaly", "contract_schema"} <= names
    assert all(c[2] for c in seen["checks"] if c[1] == "reconciliation")
    # The job ran as a Spark application of its own, its log lines in the run's log.
    messages = [e.user_message for e in instance.all_logs(launched.run_id)]
    assert any("in Spark application process" in m for m in messages), messages[-20:]
    assert any(m.startswith("reconciliation of ") for m in messages), messages[-20:]


def _assert_main_as_before(
    before: dict[str, dict[str, str] | None], after: dict[str, dict[str, str] | None]
) -> None:
    """Main is as it was: the same snapshots, and tables created since hold no row there
    (a new table's first commit on main is empty; the run's rows went to its branch)."""
    assert {t: after[t] for t in before} == before
    created = {t: (after[t] or {}).get("total-records", "0") for t in after.keys() - before.keys()}
    assert set(created.values()) <= {"0"}, created


def _job_pids() -> list[int]:
    """Python processes running the job file (spark-submit's driver), by /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(JOB_FILE).encode() in argv and not any(b"java" in a for a in argv[:1]):
            pids.append(int(entry.name))
    return pids


def test_a_job_killed_mid_way_leaves_the_tables_and_fails_the_run(
    orders: SilverDataset, launched_settings: LakehouseSettings
) -> None:
    before = _snapshots(orders, launched_settings)
    catalog = orders.resources["iceberg"].load()
    namespace = launched_settings.namespace("silver")
    outcome: dict[str, dg.ExecuteInProcessResult] = {}

    def run() -> None:
        outcome["result"] = dg.materialize(
            [build_launched_silver_asset(launched_settings, orders.name)],
            tags=range_tags(FIRST, LAST),
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )

    thread = threading.Thread(target=run)
    thread.start()

    def writing() -> bool:
        """The job has written a table's run branch: it is mid-way, before its publish."""
        for identifier in catalog.list_tables(namespace):
            refs = catalog.load_table(identifier).metadata.refs
            if any(name.startswith("audit_") for name in refs):
                return True
        return False

    deadline = time.monotonic() + 600
    while not writing():
        assert thread.is_alive(), "the job ended before it wrote a branch"
        assert time.monotonic() < deadline, "the job never wrote its branch"
        time.sleep(0.2)
    pids = _job_pids()
    assert pids, "no job process to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    thread.join(300)
    assert not thread.is_alive()

    result = outcome["result"]
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    assert "spark-submit" in error.to_string() or "exit" in error.to_string().lower()
    _assert_main_as_before(before, _snapshots(orders, launched_settings))


def test_a_failed_blocking_check_fails_the_launched_step_as_in_a_session_run(
    orders: SilverDataset,
    launched_settings: LakehouseSettings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A contract whose row-count bound (severity error) the data breaks: the job reports
    the failed check and ends normally, and Dagster fails the step for that blocking check,
    as it does in a ``session`` run; ``main`` keeps what it had."""
    contract = Path("contracts/purchase_orders.yaml").read_text(encoding="utf-8")
    bound = "        mustBeBetween: [0, 5000000]\n        severity: warning\n"
    assert contract.count(bound) == 1
    strict = tmp_path / "purchase_orders.yaml"
    strict.write_text(
        contract.replace(bound, "        mustBeBetween: [0, 2]\n        severity: error\n"),
        encoding="utf-8",
    )
    variable = f"LAKEHOUSE__DATASETS__{orders.name.upper()}__CONTRACT"
    monkeypatch.setenv(variable, str(strict))
    settings = load_settings("local", environ={**os.environ, variable: str(strict)})
    before = _snapshots(orders, settings)

    result = dg.materialize(
        [build_launched_silver_asset(settings, orders.name)],
        tags=range_tags(FIRST, LAST),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )

    assert not result.success
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert {(c.check_name, c.severity) for c in failed} >= {
        ("contract_row_count", dg.AssetCheckSeverity.ERROR)
    }
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    assert error.cls_name == "DagsterAssetCheckFailedError", error.to_string()
    _assert_main_as_before(before, _snapshots(orders, settings))
