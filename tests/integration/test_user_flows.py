"""What the README tells a user to do, done the way a user does it: through `make dev`.

One `make dev` (the Dagster webserver, the daemon and the code server) runs against
the test stack for the whole module, started the way a script or an IDE starts a
background job (SIGINT ignored). Sensors and automation are evaluated by the real
daemon, UI actions go through the webserver's GraphQL API exactly as the UI sends
them, and nothing here calls a sensor or an asset function directly. The tests run
in order: each flow leaves the deployment as a user would find it for the next.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from lakehouse_dev.instance import instance_at
from resources.run_launcher import run_worker_pid
from resources.settings import PROJECT_ROOT, LakehouseSettings
from tests.conftest import TEST_DATA_DIR, _free_port
from tests.integration.conftest import plain_contract_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LOCATION = "lakehouse"

#: `make dev`'s S3 credentials (the local S3 server accepts any): markers that no command
#: line, log, run event, metadata, snapshot property or dbt artefact may show.
SECRET_MARKERS = {
    "AWS_ACCESS_KEY_ID": f"lakehouse-test-key-{uuid.uuid4().hex}",
    "AWS_SECRET_ACCESS_KEY": f"lakehouse-test-secret-{uuid.uuid4().hex}",
}


@dataclass
class DagsterDev:
    """The running `make dev` and what a user reaches of it."""

    process: subprocess.Popen[bytes]
    url: str
    home: Path
    config: Path
    log: Path
    env: dict[str, str]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        assert "errors" not in answer, answer["errors"]
        return dict(answer["data"])

    def instance(self) -> dg.DagsterInstance:
        return instance_at(self.home)

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.process.poll() is None, f"make dev exited:\n{self.log_tail()}"
            time.sleep(3)
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what}:\n{self.log_tail()}"
        )


_LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""


def _location_loaded(ui: DagsterDev) -> bool:
    try:
        data = ui.graphql(_LOCATION_STATUS)
    except OSError:
        return False  # the webserver is not listening yet
    entries = data["workspaceOrError"].get("locationEntries", [])
    for entry in entries:
        if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
            error = entry["locationOrLoadError"]
            assert error["__typename"] == "RepositoryLocation", error
            return True
    return False


def _descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root`` with its command line."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: dict[int, str] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            try:
                found[child] = (
                    Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
            except OSError:
                continue
            stack.append(child)
    return found


def _alive(pids: dict[int, str]) -> dict[int, str]:
    """Those of ``pids`` still running the same command (not zombies)."""
    left = {}
    for pid, command in pids.items():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state != "Z" and now == command:
            left[pid] = command
    return left


@pytest.fixture(scope="module")
def ui(stack: Any, settings: LakehouseSettings) -> Iterator[DagsterDev]:
    """`make dev` on a free port, against the test stack, as a background job of a script."""
    root = TEST_DATA_DIR / "make_dev"
    home = root / "dagster_home"
    home.mkdir(parents=True)
    config = root / "lakehouse.yaml"
    shutil.copy(PROJECT_ROOT / "config" / "lakehouse.yaml", config)
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PORT": str(port),
            "LAKEHOUSE_CONFIG": str(config),
            "LAKEHOUSE__LANDING__SENSOR_INTERVAL_SECONDS": "5",
            **SECRET_MARKERS,
        }
    )
    log = root / "make_dev.log"

    with log.open("wb") as out:
        process = subprocess.Popen(
            # A shell without job control starts background jobs with SIGINT ignored.
            ["bash", "-c", "trap '' INT; exec make -s dev"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = DagsterDev(process, f"http://127.0.0.1:{port}", home, config, log, env)
    try:
        dev.wait_for("the code location to load", lambda: _location_loaded(dev), 300)
        yield dev
    finally:
        if process.poll() is None:
            leftovers = _descendants(process.pid)
            os.killpg(process.pid, signal.SIGKILL)
            for pid in _alive(leftovers):
                os.kill(pid, signal.SIGKILL)
            process.wait(30)


def _produce(resources: Any, topic: str, events: list[dict[str, Any]], stamp: datetime) -> None:
    producer = resources.kafka.producer()
    for event in events:
        producer.produce(
            topic,
            key=str(event["id"]).encode(),
            value=json.dumps(event).encode(),
            timestamp=int(stamp.timestamp() * 1000),
        )
    assert producer.flush(30) == 0


def _plain_events(name: str, count: int, when: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{name}-{when:%Y%m%d}-{i}",  # ids are unique across the table
            "name": name,
            "amount": float(Decimal(i % 7) + Decimal("0.25")),
            "event_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for i in range(count)
    ]


def _expected_total(events: list[dict[str, Any]]) -> tuple[int, Decimal]:
    return len(events), sum((Decimal(str(e["amount"])) for e in events), Decimal("0"))


def _gold_totals(resources: Any, settings: LakehouseSettings, name: str) -> dict[date, Any]:
    """``plain_daily_totals`` rows of one name: (events, total amount) per day."""
    catalog = resources.iceberg.load()
    table = (settings.namespace("gold"), "plain_daily_totals")
    if not catalog.table_exists(table):
        return {}
    rows = catalog.load_table(table).scan().to_arrow().to_pylist()
    return {r["event_date"]: (r["events"], r["total_amount"]) for r in rows if r["name"] == name}


def _now() -> datetime:
    # Kafka refuses records stamped in the future; a minute back is safely today
    # except in the first minute after midnight.
    return datetime.now(UTC) - timedelta(minutes=1)


def test_records_of_today_and_earlier_days_reach_silver_and_gold_with_no_manual_step(
    ui: DagsterDev, resources: Any, settings: LakehouseSettings
) -> None:
    """New Kafka records land (the arrivals sensors), and silver and gold follow (the
    refresh run for today's, declarative automation for earlier days')."""
    name = f"flow-{uuid.uuid4().hex[:6]}"
    now = _now()
    yesterday = now - timedelta(days=1)
    today_events, earlier_events = _plain_events(name, 40, now), _plain_events(name, 30, yesterday)
    _produce(resources, "plain-events", earlier_events, yesterday)
    _produce(resources, "plain-events", today_events, now)

    from tests.integration.test_silver import order_event

    orders = [order_event(950_000 + n, 1, now, status="paid") for n in range(5)]
    producer = resources.kafka.producer()
    for order in orders:
        producer.produce(
            "purchase-orders",
            key=order["order_id"].encode(),
            value=json.dumps(order).encode(),
            timestamp=int(now.timestamp() * 1000),
        )
    assert producer.flush(30) == 0

    expected = {
        now.date(): _expected_total(today_events),
        yesterday.date(): _expected_total(earlier_events),
    }
    ui.wait_for(
        "plain's gold totals of today and yesterday",
        lambda: _gold_totals(resources, settings, name) == expected,
        900,
    )

    catalog = resources.iceberg.load()
    sales = (settings.namespace("gold"), "fct_daily_sales")

    def orders_sold() -> int:
        if not catalog.table_exists(sales):
            return 0
        rows = catalog.load_table(sales).scan().to_arrow().to_pylist()
        return sum(
            r["orders"] for r in rows if r["sales_date"] == now.date() and r["country"] == "DE"
        )

    ui.wait_for("today's orders in fct_daily_sales", lambda: orders_sold() >= len(orders), 600)


_LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

_BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status runs(limit: 10) { runId status tags { key value } } }
  }
}
"""


def test_a_partition_range_backfill_launched_as_the_ui_does_completes_in_one_run(
    ui: DagsterDev, resources: Any
) -> None:
    """The asset's Materialize dialog with a range of days sends this mutation; the
    bronze asset's single-run backfill policy makes the range one run."""
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    launched = ui.graphql(
        _LAUNCH_BACKFILL,
        {
            "backfillParams": {
                "assetSelection": [{"path": ["bronze", "plain"]}],
                "partitionNames": days,
                "fromFailure": False,
                "tags": [],
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished() -> bool:
        status = ui.graphql(_BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        return status["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED")

    ui.wait_for(f"backfill {backfill_id}", finished, 600)
    status = ui.graphql(_BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    assert status["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (status, ui.log_tail())
    (run,) = status["runs"]
    assert run["status"] == "SUCCESS"
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/asset_partition_range_start"] == days[0]
    assert tags["dagster/asset_partition_range_end"] == days[-1]
    # Replace mode made each day exactly what Kafka holds for it.
    for day in days:
        landed = sum(r.count for r in resources.bronze_store.landed("plain", day))
        rows = sum(b.num_rows for b in resources.bronze_store.read_batches("plain", [day]))
        assert rows == landed


def _step_started(instance: dg.DagsterInstance, run_id: str, fragment: str) -> bool:
    return any(
        fragment in stats.step_key and stats.end_time is None
        for stats in instance.get_run_step_stats(run_id)
    )


def test_a_killed_run_fails_and_the_next_runs_take_its_records_on_with_no_manual_step(
    ui: DagsterDev, resources: Any, settings: LakehouseSettings
) -> None:
    """kill -9 of a daemon-launched run in its silver step: the run is marked failed,
    its pool slot is freed, and later ticks bring every record to gold."""
    instance = ui.instance()
    name = f"kill-{uuid.uuid4().hex[:6]}"
    now = _now()
    first = _plain_events(name, 25, now)
    started = time.time()
    _produce(resources, "plain-events", first, now)

    victim: list[str] = []

    def silver_running() -> bool:
        runs = instance.get_run_records(
            filters=dg.RunsFilter(
                job_name="refresh_plain",
                statuses=[dg.DagsterRunStatus.STARTED],
                created_after=datetime.fromtimestamp(started, UTC),
            )
        )
        victim[:] = [
            r.dagster_run.run_id
            for r in runs
            if _step_started(instance, r.dagster_run.run_id, "silver")
        ]
        return bool(victim)

    ui.wait_for("a refresh run in its silver step", silver_running, 600)
    recorded = run_worker_pid(instance, victim[0])
    assert recorded is not None
    os.kill(recorded[0], signal.SIGKILL)

    second = _plain_events(f"{name}-late", 15, _now())
    _produce(resources, "plain-events", second, _now())

    def failed() -> bool:
        run = instance.get_run_by_id(victim[0])
        return run is not None and run.status == dg.DagsterRunStatus.FAILURE

    ui.wait_for(f"killed run {victim[0]} to be marked failed", failed, 120)
    ui.wait_for(
        "gold totals of the records around the kill",
        lambda: (
            _gold_totals(resources, settings, name) == {now.date(): _expected_total(first)}
            and _gold_totals(resources, settings, f"{name}-late")
            == {_now().date(): _expected_total(second)}
        ),
        600,
    )


_LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

_SCHEDULES = """
query Schedules($selector: RepositorySelector!) {
  schedulesOrError(repositorySelector: $selector) {
    ... on Schedules { results { name cronSchedule scheduleState { status } } }
  }
}
"""

_REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}


def _launch_and_wait(
    ui: DagsterDev,
    selector: dict[str, Any],
    timeout: float,
    tags: dict[str, str] | None = None,
) -> str:
    """Launch a run of ``selector`` (in the project's repository) as the UI's Materialize
    or Execute button does, wait for it to succeed and return its id."""
    launched = ui.graphql(
        _LAUNCH_RUN,
        {
            "executionParams": {
                "selector": {**_REPOSITORY, **selector},
                "runConfigData": {},
                "mode": "default",
                "executionMetadata": {
                    "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
                },
            }
        },
    )["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = str(launched["run"]["runId"])
    instance = ui.instance()

    def finished() -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.is_finished

    ui.wait_for(f"run {run_id} of {selector}", finished, timeout)
    run = instance.get_run_by_id(run_id)
    assert run is not None
    assert run.status == dg.DagsterRunStatus.SUCCESS, ui.log_tail()
    return run_id


def test_a_tables_maintenance_launched_from_the_ui_runs_and_is_scheduled(
    ui: DagsterDev, settings: LakehouseSettings
) -> None:
    """The maintenance asset's Materialize button sends this mutation (with its health
    check); every table has a running daily schedule, staggered, and the hourly health
    schedule runs too."""
    key = ["maintenance", "silver", "plain"]
    run_id = _launch_and_wait(
        ui,
        {
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": key}],
            "assetCheckSelection": [{"assetKey": {"path": key}, "name": "table_health"}],
        },
        600,
    )
    instance = ui.instance()
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None
    assert event.run_id == run_id
    materialization = event.asset_materialization
    assert materialization is not None
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["dagster/table_name"] == f"{settings.namespace('silver')}.plain"
    assert int(str(metadata["data_files"])) >= 1
    assert int(str(metadata["snapshots"])) >= 1
    checks = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    names = [
        e.dagster_event.asset_check_evaluation_data.check_name for e in checks if e.dagster_event
    ]
    assert names == ["table_health"]

    found = ui.graphql(_SCHEDULES, {"selector": _REPOSITORY})["schedulesOrError"]["results"]
    schedules = {s["name"]: s for s in found}
    maintained = sorted(name for name in schedules if name.startswith("maintain_"))
    assert "maintain_silver_plain" in maintained
    assert "maintain_gold_fct_daily_sales" in maintained
    assert len({schedules[name]["cronSchedule"] for name in maintained}) == len(maintained)
    assert {schedules[name]["scheduleState"]["status"] for name in maintained} == {"RUNNING"}
    assert schedules["table_health"]["scheduleState"]["status"] == "RUNNING"


_FRESHNESS = """
query Freshness($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    freshnessStatusInfo { freshnessStatus }
  }
}
"""


_CHECKS_OF = """
query ChecksOf($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name } } } }
  }
}
"""

_CHECK_EXECUTIONS = """
query CheckExecutions($key: AssetKeyInput!, $name: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $name, limit: 50) {
    runId status evaluation { success }
  }
}
"""


def test_freshness_is_evaluated_by_the_daemon_and_the_contract_check_by_its_own_job(
    ui: DagsterDev,
) -> None:
    """The daemon's freshness evaluation (the asset's Freshness in the UI) from the
    contracts' SLA: silver and the gold it feeds are fresh after the flows above, seeds
    have no policy. ``contract_freshness`` is never evaluated in silver's own step (so it
    cannot hold a publish back), is skipped in a run that rebuilt a day long past, and
    its own job, launched as the UI's "Execute" does, evaluates it on every table with an
    SLA."""
    keys = [["silver", "plain"], ["gold", "plain_daily_totals"], ["gold", "fx_rates"]]

    def states() -> dict[str, str | None]:
        nodes = ui.graphql(_FRESHNESS, {"keys": [{"path": k} for k in keys]})["assetNodes"]
        return {
            "/".join(n["assetKey"]["path"]): (n["freshnessStatusInfo"] or {}).get("freshnessStatus")
            for n in nodes
        }

    expected = {
        "silver/plain": "HEALTHY",
        "gold/plain_daily_totals": "HEALTHY",
        "gold/fx_rates": None,  # a seed: no policy, so the UI shows no freshness
    }
    ui.wait_for("the freshness daemon's evaluation", lambda: states() == expected, 180)

    instance = ui.instance()
    silver_runs = instance.get_runs(
        dg.RunsFilter(tags={"dagster/from_automation_condition": "true"})
    )
    steps: dict[str, set[str]] = {}
    for run in silver_runs:
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            if e.dagster_event:
                name = e.dagster_event.asset_check_evaluation_data.check_name
                steps.setdefault(name, set()).add(str(e.step_key))
    # The reconciliation runs in silver's own step, before the publish; the freshness
    # check never does (it cannot hold a publish back): a step of its own, reading main.
    assert steps["reconciliation"]
    assert steps["reconciliation"] <= {"silver_plain", "silver_purchase_orders"}
    assert all(step.endswith("contract_freshness") for step in steps.get("contract_freshness", ()))

    # Materialize of a day long past, with the asset's checks, as the UI sends it: the
    # freshness check's step runs but does not judge (skipped), the others do.
    old_day = (datetime.now(UTC).date() - timedelta(days=10)).isoformat()
    silver_plain = {"path": ["silver", "plain"]}
    selection = ui.graphql(_CHECKS_OF, {"key": silver_plain})["assetNodeOrError"]
    old_run = _launch_and_wait(
        ui,
        {
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [silver_plain, {"path": ["silver", "plain_quarantine"]}],
            "assetCheckSelection": [
                {"assetKey": silver_plain, "name": c["name"]}
                for c in selection["assetChecksOrError"]["checks"]
            ],
        },
        600,
        tags={"dagster/partition": old_day},
    )
    executions = ui.graphql(_CHECK_EXECUTIONS, {"key": silver_plain, "name": "contract_freshness"})[
        "assetCheckExecutions"
    ]
    in_old_run = [e for e in executions if e["runId"] == old_run]
    assert [(e["status"], e["evaluation"]) for e in in_old_run] == [("SKIPPED", None)]
    judged = {
        e.dagster_event.asset_check_evaluation_data.check_name
        for e in instance.all_logs(old_run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if e.dagster_event
    }
    assert "reconciliation" in judged
    assert "contract_freshness" not in judged

    run_id = _launch_and_wait(ui, {"pipelineName": "contract_freshness"}, 300)
    results = {
        "/".join(data.asset_key.path): data
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if e.dagster_event and (data := e.dagster_event.asset_check_evaluation_data)
    }
    assert set(results) == {"silver/plain", "silver/orders", "silver/weather_hourly"}
    # The flows above produced today's plain events: its newest row is within the SLA.
    assert results["silver/plain"].passed
    assert float(str(results["silver/plain"].metadata["lag_seconds"].value)) < 2 * 3600


_SCHEDULE_DRY_RUN = """
mutation DryRun($selectorData: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selectorData, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { skipReason error { message } runRequests { runKey tags { key value } } }
    }
    ... on PythonError { message }
  }
}
"""


def test_the_nightly_bronze_compaction_evaluates_as_the_daemon_does(
    ui: DagsterDev, resources: Any
) -> None:
    """The schedule's "Test schedule" dialog (the code server evaluates the tick, with
    its resources): at 00:30 tomorrow, today is closed, and every closed day of the
    lookback with small files (the sensor's appends) is requested once."""
    from lakehouse_assets.bronze.schedules import days_to_compact

    tonight = datetime.combine(_now().date() + timedelta(days=1), datetime.min.time(), UTC)
    tonight += timedelta(minutes=30)
    result = ui.graphql(
        _SCHEDULE_DRY_RUN,
        {
            "selectorData": {**_REPOSITORY, "scheduleName": "compact_plain_bronze"},
            "timestamp": tonight.timestamp(),
        },
    )["scheduleDryRun"]
    assert result["__typename"] == "DryRunInstigationTick", result
    evaluation = result["evaluationResult"]
    assert evaluation["error"] is None, evaluation["error"]
    closed = [(tonight.date() - timedelta(days=n)).isoformat() for n in range(1, 9)]
    expected = days_to_compact(resources.bronze_store.landed_days("plain", closed))
    assert expected, "the sensor's appends left no closed day with small files"
    requested = {
        tag["value"]: request["runKey"]
        for request in evaluation["runRequests"]
        for tag in request["tags"]
        if tag["key"] == "dagster/partition"
    }
    assert requested == {day: f"compact:{day}:{digest}" for day, digest in expected.items()}


_RELOAD = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}
"""

_ASSETS = "{ assetNodes { assetKey { path } } }"


def test_a_dataset_added_as_the_readme_says_appears_and_lands(
    ui: DagsterDev, resources: Any, settings: LakehouseSettings
) -> None:
    """A config entry and a contract (README, "Adding a dataset"), `lakehouse-stack
    start` for its topic, "Reload definitions" in the UI: its assets appear, and its
    sensor lands new records and builds silver with no Python change."""
    name = f"clicks_{uuid.uuid4().hex[:6]}"
    topic = name.replace("_", "-")
    contract = plain_contract_for(name, ui.config.parent)
    config = yaml.safe_load(ui.config.read_text())
    config["defaults"]["datasets"][name] = {
        "topic": topic,
        "topic_partitions": 2,
        "description": "Clicks added by the user-flow test.",
        "contract": str(contract),
    }
    ui.config.write_text(yaml.safe_dump(config, sort_keys=False))
    started = subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "lakehouse-stack"), "start"],
        cwd=PROJECT_ROOT,
        env=ui.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    reloaded = ui.graphql(_RELOAD, {"name": LOCATION})["reloadRepositoryLocation"]
    assert reloaded["__typename"] == "WorkspaceLocationEntry", reloaded
    ui.wait_for("the reloaded code location", lambda: _location_loaded(ui), 300)
    keys = {"/".join(n["assetKey"]["path"]) for n in ui.graphql(_ASSETS)["assetNodes"]}
    assert {f"bronze/{name}", f"silver/{name}", f"silver/{name}_quarantine"} <= keys

    now = _now()
    events = _plain_events(name, 20, now)
    _produce(resources, topic, events, now)
    catalog = resources.iceberg.load()
    table = (settings.namespace("silver"), name)

    def in_silver() -> int:
        if not catalog.table_exists(table):
            return 0
        return catalog.load_table(table).scan().to_arrow().num_rows

    ui.wait_for(f"{name}'s records in silver", lambda: in_silver() == len(events), 600)
    landed = sum(r.count for r in resources.bronze_store.landed(name, now.date().isoformat()))
    assert landed == len(events)


def _png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Width, height and distinct pixel colours of an 8-bit RGB(A) PNG, as Chromium
    writes them (decoded here, so the test does not trust the browser that made it)."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, compressed, header = 8, bytearray(), b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IHDR":
            header = data[pos + 8 : pos + 8 + length]
        elif kind == b"IDAT":
            compressed += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), header
    assert colour_type in (2, 6), header  # RGB or RGBA
    step = 3 if colour_type == 2 else 4
    stride = width * step
    raw = zlib.decompress(bytes(compressed))
    above, colours = bytearray(stride), set[bytes]()
    for y in range(height):  # undo each line's filter: None, Sub, Up, Average, Paeth
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(step, stride):
                line[i] = (line[i] + line[i - step]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, above, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - step] if i >= step else 0
                line[i] = (line[i] + ((left + above[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a, b = (line[i - step], above[i]) if i >= step else (0, above[i])
                c = above[i - step] if i >= step else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        colours.update(bytes(line[x : x + step]) for x in range(0, stride, step))
        above = line
    return width, height, len(colours)


def test_the_ui_shows_the_lineage_plots_and_check_history_of_a_silver_table_in_chromium(
    ui: DagsterDev,
) -> None:
    """`make screenshots` against `make dev` after the flows above: headless Chromium
    (Debian's package) draws silver/plain's lineage from bronze to gold, its metadata
    plotted per partition and its reconciliation check's history with the evaluation
    that passed, and each page is saved as a PNG a person can open."""
    from lakehouse_assets.silver.assets import RECONCILIATION_CHECK
    from lakehouse_dev.screenshots import take_screenshots

    out = PROJECT_ROOT / ".lakehouse" / "screenshots"  # gitignored, kept for a person
    graph, plots, history = take_screenshots(ui.url, out, asset="silver/plain")

    assert {"bronze", "silver", "gold", "plain", "plain_daily_totals"} <= set(graph.shown)
    # The data-quality history (lakehouse_assets/silver/quality.py), plotted per day.
    assert {"quarantine_rate", "rows_in", "dagster/partition_row_count"} <= set(plots.shown), (
        plots.shown
    )
    assert history.shown[0] == RECONCILIATION_CHECK, history.shown
    assert "Passed" in history.shown[1:], history.shown
    for shot in (graph, plots, history):
        width, height, colours = _png_size_and_colours(shot.path.read_bytes())
        assert width >= 800, (shot.path, width, height)
        assert height >= 500, (shot.path, width, height)
        assert colours > 50, f"{shot.path} ({shot.page}) is nearly blank: {colours} colours"


def _files_containing(marker: bytes, roots: list[Path]) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*") if root.is_dir() else []:
            try:
                if path.is_file() and not path.is_symlink() and marker in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_no_secret_value_appears_in_any_command_line_log_event_metadata_or_artefact(
    ui: DagsterDev, resources: Any, settings: LakehouseSettings
) -> None:
    """After the flows above, the S3 credentials (markers) are nowhere to be read:
    process command lines, service and run logs, the run and event storage (asset
    metadata included), Iceberg metadata (snapshot properties) and dbt's artefacts."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3.endpoint_url,
        region_name=settings.s3.region,
        aws_access_key_id="lakehouse-local",
        aws_secret_access_key="lakehouse-local",
    )
    metadata_files = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=settings.storage.bucket, Prefix=settings.storage.warehouse_prefix
        )
        for item in page.get("Contents", [])
        if item["Key"].endswith(".json")
    ]
    assert metadata_files, "the flows committed no Iceberg table"
    for variable, value in SECRET_MARKERS.items():
        marker = value.encode()
        command_lines = [
            str(p) for p in Path("/proc").glob("[0-9]*/cmdline") if _read(p).find(marker) >= 0
        ]
        assert not command_lines, f"{variable} on the command line of {command_lines}"
        roots = [TEST_DATA_DIR, PROJECT_ROOT / "dbt" / "target", PROJECT_ROOT / "dbt" / "logs"]
        assert not _files_containing(marker, roots), f"{variable} written to files"
        leaked = [
            key
            for key in metadata_files
            if marker in s3.get_object(Bucket=settings.storage.bucket, Key=key)["Body"].read()
        ]
        assert not leaked, f"{variable} in Iceberg metadata {leaked}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_sigterm_stops_make_dev_and_every_process_it_started(ui: DagsterDev) -> None:
    """`kill %1` of a background `make dev` (SIGINT ignored): make passes SIGTERM on,
    and the webserver, the daemon, the code servers and runs all exit."""
    started = _descendants(ui.process.pid)
    assert any("dagster_webserver" in c for c in started.values()), started
    assert any("dagster._daemon" in c for c in started.values()), started
    ui.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (ui.process.poll() is None or _alive(started)):
        time.sleep(1)
    assert ui.process.poll() is not None, "make dev is still running"
    assert not _alive(started), f"left running: {_alive(started)}"
