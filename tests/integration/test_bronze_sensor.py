"""The Kafka arrivals sensor and recovery: no gap and no duplicate, whatever fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.bronze.assets import bronze_key
from lakehouse_assets.bronze.jobs import (
    build_landing_job,
    build_refresh_job,
    landing_job_name,
    refresh_job_name,
)
from lakehouse_assets.bronze.sensors import MAX_RUNS_IN_FLIGHT, TARGET_TAG, build_arrivals_sensor
from lakehouse_assets.partitions import automated_days
from resources.kafka.client import KafkaResource
from tests.conftest import _free_port
from tests.integration.conftest import BronzeDataset, Record, workspace_environment

pytestmark = pytest.mark.integration


def _recent_days() -> tuple[str, str]:
    """Two days inside the sensor's look-back window (records must not be in the future)."""
    today = datetime.now(UTC).date()
    return (today - timedelta(days=2)).isoformat(), (today - timedelta(days=1)).isoformat()


def _events(day: str, count: int, start: int = 0, size: int = 0) -> list[Record]:
    base = datetime.fromisoformat(day).replace(tzinfo=UTC)
    padding = "x" * size
    return [
        (
            f"k{start + i}".encode(),
            json.dumps({"id": start + i, "pad": padding}).encode(),
            base + timedelta(seconds=i * 80_000 / count),
            None,
        )
        for i in range(count)
    ]


def _tick(dataset: BronzeDataset, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    sensor = build_arrivals_sensor(
        dataset.settings,
        dataset.name,
        build_landing_job(dataset.name, dataset.asset()),
    )
    resources = {k: dataset.resources[k] for k in ("kafka", "bronze_store")}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor(context)


def _run(dataset: BronzeDataset, instance: dg.DagsterInstance, request: dg.RunRequest) -> bool:
    """Execute a run request the way the daemon would, in the same instance."""
    return dg.materialize(
        [dataset.asset()],
        instance=instance,
        resources=dataset.resources,
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
    ).success


def _unique_count(table: pa.Table) -> tuple[int, int]:
    coordinates = set(
        zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(), strict=True)
    )
    return table.num_rows, len(coordinates)


def test_sensor_requests_each_day_with_new_records_then_rests(
    bronze_dataset: BronzeDataset,
) -> None:
    day1, day2 = _recent_days()
    bronze_dataset.produce(_events(day1, 300) + _events(day2, 200))
    instance = dg.DagsterInstance.ephemeral()

    first = _tick(bronze_dataset, instance, cursor=None)
    assert sorted(r.partition_key for r in first.run_requests) == [day1, day2]
    assert all(r.run_config["ops"] for r in first.run_requests)  # append mode
    for request in first.run_requests:
        assert _run(bronze_dataset, instance, request)

    second = _tick(bronze_dataset, instance, cursor=first.cursor)
    assert not second.run_requests
    assert _unique_count(bronze_dataset.read([day1, day2])) == (500, 500)


def _refresh_tick(dataset: BronzeDataset) -> list[dg.RunRequest]:
    """The run requests of one tick of a sensor that has a refresh job."""
    asset = dataset.asset()
    landing = build_landing_job(dataset.name, asset)
    refresh = build_refresh_job(dataset.name, asset, with_gold=False)
    sensor = build_arrivals_sensor(dataset.settings, dataset.name, landing, refresh)
    definitions = dg.Definitions(
        assets=[asset], jobs=[landing, refresh], sensors=[sensor], resources=dataset.resources
    )
    resources = {k: dataset.resources[k] for k in ("kafka", "bronze_store")}
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources=resources, definitions=definitions
    ) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert result.run_requests is not None
    return list(result.run_requests)


def _today_records(count: int) -> list[Record]:
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        (f"t{i}".encode(), b'{"id": 1}', max(now - timedelta(seconds=30 + i), midnight), None)
        for i in range(count)
    ]


def test_todays_records_go_to_one_refresh_run_over_the_late_window(
    bronze_dataset: BronzeDataset,
) -> None:
    """Today's records land in the refresh job's run, which also rebuilds the silver
    (and gold) days that automation keeps current; a day before them lands alone."""
    settings, name = bronze_dataset.settings, bronze_dataset.name
    days = automated_days(settings.late_window_days(name))
    today = datetime.now(UTC).date()
    before = (today - timedelta(days=days)).isoformat()
    bronze_dataset.produce(_events(before, 30) + _today_records(20))

    by_job = {request.job_name: request for request in _refresh_tick(bronze_dataset)}

    assert set(by_job) == {landing_job_name(name), refresh_job_name(name)}
    landing = by_job[landing_job_name(name)]
    assert landing.partition_key == before
    refreshing = by_job[refresh_job_name(name)]
    first = max(settings.dataset_start_date(name), today - timedelta(days=days - 1))
    assert refreshing.tags["dagster/asset_partition_range_start"] == first.isoformat()
    assert refreshing.tags["dagster/asset_partition_range_end"] == today.isoformat()
    assert refreshing.run_config == landing.run_config  # append mode, as landings
    assert refreshing.tags[TARGET_TAG].startswith(today.isoformat())


class _GatedRun:
    """A run of a request, executing in a thread, whose step after bronze waits for
    :meth:`release` (it stands for the silver and gold steps of a refresh run)."""

    def __init__(
        self, dataset: BronzeDataset, instance: dg.DagsterInstance, request: dg.RunRequest
    ) -> None:
        asset = dataset.asset()
        self._gate = threading.Event()
        self._outcome: list[bool] = []
        self._instance, self._target = instance, request.tags[TARGET_TAG]
        self._step = bronze_key(dataset.name).to_python_identifier()
        gate = self._gate

        @dg.asset(
            deps=[asset.key],
            partitions_def=asset.partitions_def,
            backfill_policy=dg.BackfillPolicy.single_run(),
        )
        def downstream() -> None:
            assert gate.wait(120)

        def execute() -> None:
            result = dg.materialize(
                [asset, downstream],
                instance=instance,
                resources=dataset.resources,
                partition_key=request.partition_key,
                run_config=request.run_config,
                tags=request.tags,
            )
            self._outcome.append(result.success)

        self._thread = threading.Thread(target=execute)
        self._thread.start()

    def wait_landed(self) -> None:
        """Until the run's bronze step has succeeded (the run itself is still in flight)."""
        deadline = time.monotonic() + 120
        while True:
            runs = self._instance.get_runs(filters=dg.RunsFilter(tags={TARGET_TAG: self._target}))
            stats = [
                s
                for run in runs
                for s in self._instance.get_run_step_stats(run.run_id, [self._step])
            ]
            if any(s.status is not None and s.status.value == "SUCCESS" for s in stats):
                return
            assert time.monotonic() < deadline, "the bronze step never succeeded"
            time.sleep(0.2)

    def release(self) -> bool:
        """Let the run finish; whether it succeeded."""
        self._gate.set()
        self._thread.join(180)
        return self._outcome == [True]


def test_new_records_wait_until_the_run_in_flight_has_landed(
    bronze_dataset: BronzeDataset,
) -> None:
    """A run not started yet holds new records back (one landing at a time). Once its
    bronze step succeeded, they get a run of their own while the rest of it still
    runs, up to MAX_RUNS_IN_FLIGHT runs of the dataset."""
    assert MAX_RUNS_IN_FLIGHT == 2  # the runs below
    name = bronze_dataset.name
    day1, _ = _recent_days()
    bronze_dataset.produce(_events(day1, 100))
    asset = bronze_dataset.asset()

    with dg.instance_for_test() as instance:
        (first,) = _tick(bronze_dataset, instance, cursor=None).run_requests
        job = dg.Definitions(
            assets=[asset],
            jobs=[build_landing_job(name, asset)],
            resources=bronze_dataset.resources,
        ).resolve_job_def(landing_job_name(name))
        pending = instance.create_run_for_job(
            job,
            run_config=first.run_config,
            tags={**first.tags, "dagster/partition": first.partition_key},
            status=dg.DagsterRunStatus.NOT_STARTED,
        )
        waiting = _tick(bronze_dataset, instance, cursor=None)
        assert isinstance(waiting, dg.SkipReason)
        assert f"run {pending.run_id} has yet to land" in str(waiting.skip_message)
        instance.report_run_canceled(pending)

        gated: list[_GatedRun] = []
        try:
            gated.append(_GatedRun(bronze_dataset, instance, first))
            gated[0].wait_landed()
            bronze_dataset.produce(_events(day1, 50, start=100))
            (second,) = _tick(bronze_dataset, instance, cursor=None).run_requests
            assert second.run_key != first.run_key
            assert second.tags[TARGET_TAG] != first.tags[TARGET_TAG]

            gated.append(_GatedRun(bronze_dataset, instance, second))
            gated[1].wait_landed()
            bronze_dataset.produce(_events(day1, 25, start=150))
            full = _tick(bronze_dataset, instance, cursor=None)
            assert isinstance(full, dg.SkipReason)
            assert f"2 runs of {name} are in flight" in str(full.skip_message)
        finally:
            finished = [run.release() for run in gated]
        assert finished == [True, True]
        (third,) = _tick(bronze_dataset, instance, cursor=None).run_requests
        assert _run(bronze_dataset, instance, third)
        assert _unique_count(bronze_dataset.read([day1])) == (175, 175)


def test_lost_cursor_never_duplicates(bronze_dataset: BronzeDataset) -> None:
    day1, _ = _recent_days()
    bronze_dataset.produce(_events(day1, 300))
    instance = dg.DagsterInstance.ephemeral()
    for request in _tick(bronze_dataset, instance, cursor=None).run_requests:
        assert _run(bronze_dataset, instance, request)

    after_reset = _tick(bronze_dataset, instance, cursor=None)  # the cursor was deleted

    assert not after_reset.run_requests
    bronze_dataset.produce(_events(day1, 100, start=300))
    more = _tick(bronze_dataset, instance, cursor=None)
    assert [r.partition_key for r in more.run_requests] == [day1]
    for request in more.run_requests:
        assert _run(bronze_dataset, instance, request)
    assert _unique_count(bronze_dataset.read([day1])) == (400, 400)


def test_failed_run_is_requested_again_with_a_new_run_key(bronze_dataset: BronzeDataset) -> None:
    day1, _ = _recent_days()
    bronze_dataset.produce(_events(day1, 100))
    instance = dg.DagsterInstance.ephemeral()
    (request,) = _tick(bronze_dataset, instance, cursor=None).run_requests
    broken = dict(bronze_dataset.resources)
    broken["kafka"] = KafkaResource(
        bootstrap_servers=f"127.0.0.1:{_free_port()}", timeout_seconds=2.0
    )
    failed = dg.materialize(
        [bronze_dataset.asset()],
        instance=instance,
        resources=broken,
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
        raise_on_error=False,
    )
    assert not failed.success

    (retry,) = _tick(bronze_dataset, instance, cursor=None).run_requests

    assert retry.run_key != request.run_key
    assert _run(bronze_dataset, instance, retry)
    assert _unique_count(bronze_dataset.read([day1])) == (100, 100)


def test_unreachable_broker_is_a_skipped_tick_with_the_reason(
    bronze_dataset: BronzeDataset,
) -> None:
    resources: dict[str, Any] = {"bronze_store": bronze_dataset.store}
    resources["kafka"] = KafkaResource(
        bootstrap_servers=f"127.0.0.1:{_free_port()}", timeout_seconds=2.0
    )
    sensor = build_arrivals_sensor(
        bronze_dataset.settings,
        bronze_dataset.name,
        build_landing_job(bronze_dataset.name, bronze_dataset.asset()),
    )
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources=resources
    ) as context:
        result = sensor(context)

    assert isinstance(result, dg.SkipReason)
    assert "Kafka at 127.0.0.1:" in str(result.skip_message)
    assert "unreachable" in str(result.skip_message)


_LAND_IN_CHILD = """
import sys
from tests.integration.conftest import BronzeDataset, dataset_settings
name, topic, day = sys.argv[1:4]
BronzeDataset(name, topic, dataset_settings(name, topic), 3).land([day], mode="append")
"""


def test_killed_landing_run_leaves_no_gap_and_no_duplicate(
    bronze_dataset: BronzeDataset,
) -> None:
    day1, _ = _recent_days()
    # Partition 0 lands first and fast; 1 and 2 are large (150 MB each), so the kill
    # lands mid-way even when the landing is fast and listing the store is slow.
    sizes = {0: 2_000, 1: 100_000, 2: 100_000}
    for partition, count in sizes.items():
        bronze_dataset.produce(
            _events(day1, count, start=partition * 100_000, size=1500), partition
        )
    child = subprocess.Popen(
        [sys.executable, "-c", _LAND_IN_CHILD, bronze_dataset.name, bronze_dataset.topic, day1],
        env=dict(os.environ),
        cwd=os.getcwd(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not bronze_dataset.files(day1) and time.monotonic() < deadline:
        assert child.poll() is None, "the landing finished before it could be killed"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    landed_before_kill = len(bronze_dataset.files(day1))
    assert 1 <= landed_before_kill < 3, "the kill did not happen mid-way"

    bronze_dataset.land([day1], mode="append")

    total = sum(sizes.values())
    assert _unique_count(bronze_dataset.read([day1])) == (total, total)


def test_sensor_preview_requests_a_job_for_every_day_as_the_daemon_evaluates_it(
    bronze_dataset: BronzeDataset, tmp_path: Path
) -> None:
    """`dagster sensor preview` evaluates the sensor through a code server, with the
    validation the daemon applies: a request that names no job of a sensor targeting
    two (landing and refresh) fails the whole tick, so nothing lands at all."""
    from resources.settings import PROJECT_ROOT

    name = bronze_dataset.name
    today = datetime.now(UTC).date()
    before = (today - timedelta(days=automated_days(3))).isoformat()
    bronze_dataset.produce(_events(before, 10) + _today_records(5))
    env = workspace_environment(bronze_dataset, tmp_path)
    preview = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "sensor",
            "preview",
            f"{name}_kafka_arrivals",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    output = preview.stdout + preview.stderr
    assert preview.returncode == 0, output
    assert "did not specify job_name" not in output
    # One landing run for the older day, one refresh run for today's records.
    assert "Sensor returning run requests for 2 run(s)" in output, output


def test_the_nightly_compaction_rewrites_closed_days_with_small_files_exactly_once(
    bronze_dataset: BronzeDataset,
) -> None:
    """A closed day landed in several appends (the sensor's ticks, late records) is
    requested by the compaction schedule and becomes one file per Kafka partition with
    every record once; a day already compacted is not requested again."""
    from lakehouse_assets.bronze.schedules import build_compaction_schedule

    day1, day2 = _recent_days()
    # Two ticks of day 1 (two appends), then day 2 in one.
    bronze_dataset.produce(_events(day1, 30))
    bronze_dataset.land([day1], mode="append")
    bronze_dataset.produce(_events(day1, 30, start=1000))
    bronze_dataset.land([day1], mode="append")
    bronze_dataset.produce(_events(day2, 12))
    bronze_dataset.land([day2], mode="append")
    assert len(bronze_dataset.files(day1)) > bronze_dataset.partitions
    assert len(bronze_dataset.files(day2)) <= bronze_dataset.partitions

    asset = bronze_dataset.asset()
    job = build_landing_job(bronze_dataset.name, asset)
    schedule = build_compaction_schedule(
        bronze_dataset.name, job, date.fromisoformat(day1) - timedelta(days=30), lookback_days=7
    )
    repository = dg.Definitions(
        assets=[asset], jobs=[job], schedules=[schedule], resources=bronze_dataset.resources
    ).get_repository_def()
    tomorrow_night = datetime.fromisoformat(day2).replace(tzinfo=UTC) + timedelta(
        days=1, minutes=30
    )
    instance = dg.DagsterInstance.ephemeral()

    def evaluate() -> Any:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tomorrow_night,
            resources={"bronze_store": bronze_dataset.store},
            repository_def=repository,
        ) as context:
            return schedule.evaluate_tick(context)

    requests = evaluate().run_requests
    assert [r.partition_key for r in requests] == [day1]
    assert _run(bronze_dataset, instance, requests[0])
    assert len(bronze_dataset.files(day1)) == bronze_dataset.partitions
    assert _unique_count(bronze_dataset.read([day1])) == (60, 60)
    again = evaluate()
    assert not again.run_requests
    assert "has small files" in str(again.skip_message)
