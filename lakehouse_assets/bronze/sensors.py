"""The Kafka arrivals sensor: requests bronze runs for the days that have unlanded offsets.

Each tick compares Kafka's offsets with what the bronze store holds, using only
metadata requests (watermarks and the time index); it never consumes a payload,
so ticks stay fast and cannot lose data. The store, not the cursor, is the truth:
a lost cursor, a failed or killed run, or a restarted daemon only means the next
tick finds the same gap and requests it again. The cursor just lets a tick skip
work when nothing changed since a tick that found everything landed.
"""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from lakehouse_assets.bronze.assets import LANDING_TAG, bronze_key, landing_run_config
from lakehouse_assets.bronze.jobs import LandingJob
from lakehouse_assets.bronze.landing import RetentionError, day_ranges, plan_files
from lakehouse_assets.partitions import automated_days, range_tags
from resources.errors import ServiceUnreachableError
from resources.kafka.client import KafkaResource, TopicReader
from resources.s3.parquet_store import ParquetStore
from resources.settings import LakehouseSettings

_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


#: Run tag naming the offsets a sensor-requested run was asked to land.
TARGET_TAG = "lakehouse/landing_target"


def sensor_name(dataset: str) -> str:
    return f"{dataset}_kafka_arrivals"


def lookback_days(settings: LakehouseSettings, dataset: str, today: datetime) -> list[str]:
    start = max(
        settings.dataset_start_date(dataset),
        (today - timedelta(days=settings.landing.lookback_days - 1)).date(),
    )
    days = []
    day = start
    while day <= today.date():
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def _run_request(
    instance: dg.DagsterInstance,
    dataset: str,
    day: str,
    target: str,
    job_name: str,
    *,
    refresh: tuple[str, str] | None = None,
) -> dg.RunRequest:
    """A run request whose key repeats while the same offsets are wanted, so repeats are no-ops.

    No run of the dataset that has yet to land is in flight when this is called, so
    an earlier run for the same target has ended without landing it (failed or
    killed): the attempt number in the key lets the sensor request it again.

    The request names its job (``job_name``): the sensor targets the landing and the
    refresh jobs, and Dagster refuses a request that leaves the choice open.
    With ``refresh`` (a job name and the first day of the window), the run is of the
    refresh job over ``[first day, day]``: it lands the day and rebuilds the silver
    and gold days that automation keeps current, in one run.
    """
    earlier = instance.get_run_records(
        filters=dg.RunsFilter(tags={LANDING_TAG: dataset, TARGET_TAG: target})
    )
    tags = {LANDING_TAG: dataset, TARGET_TAG: target}
    if refresh is None:
        return dg.RunRequest(
            run_key=f"{target}#{len(earlier)}",
            job_name=job_name,
            partition_key=day,
            run_config=landing_run_config(dataset, "append"),
            tags=tags,
        )
    refresh_job, first_day = refresh
    return dg.RunRequest(
        run_key=f"{target}#{len(earlier)}",
        job_name=refresh_job,
        run_config=landing_run_config(dataset, "append"),
        tags={**tags, **range_tags(first_day, day)},
    )


def refresh_start(settings: LakehouseSettings, dataset: str, today: date) -> date:
    """The first day of a refresh run: the oldest day automation keeps current.

    Today's records belong to fewer days, but the run's landing touches every bronze
    day of its range (appending nothing to the older ones), and automation would
    rebuild any silver day before the range that reads them, in a run of its own.
    """
    days = automated_days(settings.late_window_days(dataset))
    return max(settings.dataset_start_date(dataset), today - timedelta(days=days - 1))


#: Landing runs of a dataset in flight at most: one in silver or gold while the next
#: lands. More would only queue on the pools, a process each, when records arrive
#: faster than silver and gold take them; waiting, they are landed by fewer runs.
MAX_RUNS_IN_FLIGHT = 2


def _why_wait(instance: dg.DagsterInstance, dataset: str) -> str | None:
    """Why the tick must not request a landing of the dataset now, if it must not.

    A run whose bronze step has not succeeded holds new records back (one landing at
    a time). Once it succeeded its offsets are in the store, which the tick reads,
    and the rest of the run (silver and gold of a refresh run) holds them back only
    when :data:`MAX_RUNS_IN_FLIGHT` runs are in flight.
    """
    step = bronze_key(dataset).to_python_identifier()
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=_ACTIVE, tags={LANDING_TAG: dataset}))
    active = [run for run in runs if not _worker_died(instance, run)]
    for run in active:
        stats = instance.get_run_step_stats(run.run_id, step_keys=[step])
        if not any(s.status is not None and s.status.name == "SUCCESS" for s in stats):
            return f"run {run.run_id} has yet to land records of {dataset}"
    if len(active) >= MAX_RUNS_IN_FLIGHT:
        ids = ", ".join(run.run_id for run in active)
        return f"{len(active)} runs of {dataset} are in flight ({ids})"
    return None


def _worker_died(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether the run launcher reports that a started run's process is gone.

    Run monitoring marks such a run failed on its next pass; until then it is not
    in flight, and must not hold new records back.
    """
    launcher = instance.run_launcher
    if run.status != dg.DagsterRunStatus.STARTED or not launcher.supports_check_run_worker_health:
        return False
    try:
        health = launcher.check_run_worker_health(run)
    except Exception:  # a launcher that cannot tell says nothing about the run
        return False
    return health.status.value in ("FAILED", "NOT_FOUND")


def _inputs_exist(context: dg.SensorEvaluationContext, job_name: str) -> bool:
    """Whether every asset that the job's assets read from outside it was materialised.

    The refresh run rebuilds gold, which also reads tables loaded apart (dbt seeds):
    on a fresh deployment, before automation has loaded them, today's records land
    alone and automation takes them on from there.
    """
    repository = context.repository_def
    if repository is None:
        return False
    selected = repository.get_job(job_name).asset_layer.selected_asset_keys
    graph = repository.asset_graph
    outside = {parent for key in selected for parent in graph.get(key).parent_keys} - selected
    # An external asset (the Kafka topic, kafka/<topic>) is never materialised.
    outside = {key for key in outside if graph.get(key).is_materializable}
    return all(context.instance.get_latest_materialization_event(key) for key in outside)


def build_arrivals_sensor(
    settings: LakehouseSettings,
    dataset: str,
    job: LandingJob,
    refresh_job: LandingJob | None = None,
) -> dg.SensorDefinition:
    """The dataset's arrivals sensor.

    With ``refresh_job``, today's new records go to one run of it: it lands them and
    rebuilds the silver and gold days that automation keeps current (the late window
    back from today and one day more, :func:`refresh_start`), so fresh data reaches
    gold without waiting for automation's tick and a second run. Other days land
    with ``job``; automation then updates what reads them. Until a requested run's
    bronze step has succeeded, new records wait for it (the sensor lands a dataset
    one run at a time); after that, the next run may start while silver and gold of
    the previous one are still running, up to :data:`MAX_RUNS_IN_FLIGHT` runs.
    """
    topic = settings.dataset(dataset).kafka_topic

    @dg.sensor(
        name=sensor_name(dataset),
        jobs=[job] if refresh_job is None else [job, refresh_job],
        minimum_interval_seconds=settings.landing.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Requests bronze runs for the days of Kafka topic `{topic}` that have offsets "
            "not landed yet. Never consumes payloads; the bronze store is the ledger."
        ),
    )
    def _arrivals(
        context: dg.SensorEvaluationContext,
        kafka: KafkaResource,
        bronze_store: ParquetStore,
    ) -> dg.SensorResult | dg.SkipReason:
        wait = _why_wait(context.instance, dataset)
        if wait is not None:
            return dg.SkipReason(wait)
        try:
            with TopicReader(kafka, topic, group_id=f"lakehouse-sensor-{dataset}") as reader:
                highs = {str(p): high for p, (_, high) in reader.watermarks().items()}
                previous = json.loads(context.cursor) if context.cursor else {}
                if previous.get("highs") == highs and previous.get("complete"):
                    return dg.SkipReason(f"no new records on {topic} since the last tick")
                requests, skipped = [], []
                now = datetime.now(UTC)
                today = now.date()
                days = lookback_days(settings, dataset, now)
                landed = bronze_store.landed_days(dataset, days)
                for day in days:
                    try:
                        (ranges,) = day_ranges(reader, [day])
                    except RetentionError as exc:
                        skipped.append(str(exc))
                        continue
                    planned = plan_files(ranges, topic, "append", landed[day])
                    if planned:
                        target = f"{day}|" + ",".join(f"{r.partition}:{r.last}" for r in planned)
                        refresh = None
                        if (
                            refresh_job is not None
                            and day == today.isoformat()
                            and _inputs_exist(context, refresh_job.name)
                        ):
                            first = refresh_start(settings, dataset, today).isoformat()
                            refresh = (refresh_job.name, first)
                        requests.append(
                            _run_request(
                                context.instance, dataset, day, target, job.name, refresh=refresh
                            )
                        )
        except (ServiceUnreachableError, LookupError) as exc:
            return dg.SkipReason(f"cannot check {topic}: {exc}")
        for reason in skipped:
            context.log.warning(reason)
        cursor = json.dumps({"highs": highs, "complete": not requests})
        if not requests:
            return dg.SensorResult(
                skip_reason=f"every offset of {topic} up to {highs} is landed", cursor=cursor
            )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _arrivals
