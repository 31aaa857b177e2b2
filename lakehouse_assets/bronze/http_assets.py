"""Bronze of HTTP datasets: the source as an external asset, the landing asset and the
schedule that fetches new days. Made by factories from ``datasets.<name>.http``."""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg

from lakehouse_assets.bronze.assets import LANDING_TAG, bronze_key
from lakehouse_assets.bronze.http_landing import (
    FetchedDay,
    RecordTyper,
    fetch_day,
    http_client,
    now,
    typed_batches,
)
from lakehouse_assets.bronze.jobs import LandingJob
from lakehouse_assets.bronze.typed import payload_schema
from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.partitions import daily_partitions, range_tags
from resources.http.raw import RawStore
from resources.s3.client import S3Resource
from resources.s3.offset_files import OffsetRange
from resources.s3.parquet_store import LandedFile, Landing
from resources.settings import LakehouseSettings


def http_source_key(dataset: str) -> dg.AssetKey:
    """The asset key of an HTTP source, the external asset bronze lands (``http/<dataset>``)."""
    return dg.AssetKey(["http", dataset])


def source_uri(url_template: str) -> str:
    """The source's identity for lineage: its URL template without the query."""
    return url_template.split("?", 1)[0]


def build_http_source_spec(settings: LakehouseSettings, dataset: str) -> dg.AssetSpec:
    """The dataset's HTTP source as an external asset: a node of the lineage, never run."""
    source = settings.dataset(dataset).http_source
    return dg.AssetSpec(
        key=http_source_key(dataset),
        group_name="bronze",
        description=f"HTTP source `{source_uri(source.url)}` ({source.format}), the source of "
        f"`bronze/{dataset}`.",
        kinds={"http"},
        metadata={"http_url": source.url, "dagster/uri": source_uri(source.url)},
    )


def build_http_bronze_asset(settings: LakehouseSettings, dataset: str) -> dg.AssetsDefinition:
    """The bronze asset of an HTTP dataset: each day's responses stored raw, then landed as
    typed Parquet, the day replaced whole (see :mod:`lakehouse_assets.bronze.http_landing`)."""
    spec = settings.dataset(dataset)
    source = spec.http_source
    contract = load_contract(settings.contract_path(dataset))
    payload = payload_schema(contract)
    raw_prefix = settings.storage.raw_prefix

    @dg.asset(
        key=bronze_key(dataset),
        deps=[http_source_key(dataset)],
        group_name="bronze",
        description=(
            f"Records of `{source_uri(source.url)}` ({source.format}), one daily partition per "
            "requested day: typed by the contract, with the load run, time and raw response "
            f"(s3://{settings.storage.bucket}/{raw_prefix}/{dataset}/run_id=.../) of each. "
            + spec.description
        ),
        partitions_def=daily_partitions(settings, dataset),
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="bronze_io_manager",
        kinds={"http", "s3", "parquet"},
        pool=f"bronze_{dataset}",
        metadata={"http_url": source.url, "dagster/uri": settings.bronze_uri(dataset)},
        op_tags={LANDING_TAG: dataset},
    )
    def _bronze(context: dg.AssetExecutionContext, s3: S3Resource) -> Landing:
        run_id = context.run.run_id
        days = list(context.partition_keys)
        raw = RawStore(s3, raw_prefix, dataset, run_id)
        typer = RecordTyper(payload)
        fs = raw.filesystem()
        fetched: list[FetchedDay] = []
        with http_client(source) as client:
            for day in days:
                got = fetch_day(client, source, raw, fs, day, typer, log=context.log.warning)
                context.log.info(
                    f"{dataset} {day}: {got.records} records in {len(got.pages)} response(s), "
                    f"{sum(p.size for p in got.pages)} bytes"
                )
                fetched.append(got)
        loaded_at = now()
        files = [
            LandedFile(
                day.day,
                OffsetRange(dataset, 0, 0, day.records - 1),
                typed_batches(source, raw, day, typer, run_id, loaded_at),
            )
            for day in fetched
            if day.records
        ]
        return Landing(
            mode="replace",
            partition_keys=days,
            schema=typer.schema,
            files=files,
            source_metadata={
                "http_url": source.url,
                "raw_prefix": f"s3://{raw.run_prefix()}/",
                "http_responses": {
                    day.day: [
                        {
                            "url": page.url,
                            "records": page.records,
                            "bytes": page.size,
                            "sha256": page.sha256,
                            "attempts": page.attempts,
                            "resumed": page.resumed,
                            "restarted": page.restarted,
                        }
                        for page in day.pages
                    ]
                    for day in fetched
                },
            },
        )

    return _bronze


def fetch_schedule_name(dataset: str) -> str:
    return f"fetch_{dataset}"


def build_fetch_schedule(
    settings: LakehouseSettings, dataset: str, job: LandingJob
) -> dg.ScheduleDefinition:
    """Lands an HTTP dataset's newest days on ``http.cron``: one run over the last
    ``http.schedule_days`` closed days (and today with ``http.include_today``), each day
    replaced whole. Automation then rebuilds the silver days that read them.

    Re-landing closed days again catches what a source corrects or publishes late
    (archive APIs fill the last days in); an unchanged response lands the same rows.
    """
    source = settings.dataset(dataset).http_source
    first_day = settings.dataset_start_date(dataset)

    @dg.schedule(
        name=fetch_schedule_name(dataset),
        job=job,
        cron_schedule=source.cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Fetch the last {source.schedule_days} closed day(s) of {dataset} from "
            f"{source_uri(source.url)} into bronze (replacing each day)"
            + (", and today so far" if source.include_today else "")
            + "."
        ),
    )
    def _fetch(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        today = context.scheduled_execution_time.date()
        last = today if source.include_today else today - timedelta(days=1)
        first = max(first_day, today - timedelta(days=source.schedule_days))
        if last < first:
            yield dg.SkipReason(f"{dataset} starts on {first_day}: no day to fetch yet")
            return
        yield dg.RunRequest(
            run_key=f"{dataset}:{first}..{last}@{context.scheduled_execution_time.isoformat()}",
            tags={LANDING_TAG: dataset, **range_tags(first.isoformat(), last.isoformat())},
        )

    return _fetch
