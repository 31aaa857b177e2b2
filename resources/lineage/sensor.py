"""The ``openlineage`` sensor: Dagster's event log to OpenLineage, by dagster-openlineage.

It is dagster-openlineage's own sensor (``openlineage_sensor``, asset events on): each
tick reads the event log after its cursor and emits, for every materialisation
planned, done or failed and every check result, one OpenLineage run event through
:class:`~resources.lineage.adapter.LakehouseLineageAdapter` on the configured
transport (:mod:`resources.lineage.transport`). Runs and steps become events too.
It reads nothing but Dagster's event log and, once per table, the catalog's location
of an Iceberg table; a failed emission is logged and dropped, never retried, so a
receiver that is down never holds up a tick.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
from dagster_openlineage import openlineage_sensor

from resources.lineage.adapter import LakehouseLineageAdapter
from resources.lineage.datasets import LakehouseDatasets, TableLocator, lakehouse_datasets
from resources.lineage.transport import lineage_client, lineage_problem
from resources.private_apis import install_openlineage_sensor_adapter
from resources.settings import LakehouseSettings

SENSOR_NAME = "openlineage"

#: Event-log records one tick reads at most (dagster-openlineage's default is 30; a
#: run of every layer writes a few hundred). Each becomes at most one event: a line of
#: a file or one HTTP request.
EVENTS_PER_TICK = 1000


#: Why a tick skips on Dagster's default SQLite storage (one event log file per run).
RUN_SHARDED = (
    "The instance's event log is one SQLite file per run, which dagster-openlineage cannot "
    "read across runs: use config/dagster.yaml (its event_log_storage is "
    "ConsolidatedSqliteEventLogStorage) or dagster-postgres as the instance's configuration."
)


class LineageConfigWarning(UserWarning):
    """The ``lineage`` section cannot deliver events; the sensor skips with the reason."""


def table_locator(iceberg: dg.ConfigurableResource) -> TableLocator:
    """The location of ``namespace.table`` in the catalog of the resource ``iceberg``, or None.

    The resource (an :class:`~resources.iceberg.catalog.IcebergCatalogResource`) is
    initialised on first use, with its environment variables resolved, as in a run.
    """
    catalogs: list[Any] = []

    def locate(namespace: str, table: str) -> str | None:
        from pyiceberg.exceptions import NoSuchTableError

        if not catalogs:
            with dg.build_resources({"iceberg": iceberg}) as built:
                catalogs.append(built.iceberg.load())
        try:
            return str(catalogs[0].load_table((namespace, table)).location())
        except NoSuchTableError:
            return None

    return locate


def build_lineage_sensor(
    settings: LakehouseSettings,
    specs: Sequence[dg.AssetSpec],
    table_location: TableLocator | None = None,
) -> dg.SensorDefinition | None:
    """The ``openlineage`` sensor for the assets ``specs``, or None with ``lineage.enabled`` off.

    Running by default. With a transport that cannot work (HTTP without ``lineage.url``)
    the definitions still load, with a :class:`LineageConfigWarning`, and every tick
    skips with the same message.
    """
    lineage = settings.lineage
    if not lineage.enabled:
        return None
    description = (
        f"Emits OpenLineage events ({lineage.transport} transport, namespace "
        f"{lineage.namespace}) for every materialisation, check result, run and step: "
        "Kafka topics, bronze S3 prefixes and Iceberg tables named as OpenLineage names "
        "them, with schema, column lineage and data-quality facets."
    )
    problem = lineage_problem(settings)
    if problem is not None:
        warnings.warn(problem, LineageConfigWarning, stacklevel=2)

        @dg.sensor(
            name=SENSOR_NAME,
            minimum_interval_seconds=lineage.sensor_interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=description,
        )
        def _misconfigured() -> dg.SkipReason:
            return dg.SkipReason(problem)

        return _misconfigured

    adapter = LakehouseLineageAdapter(
        lineage_datasets(settings, specs, table_location),
        lineage_client(settings),
        timeout=lineage.timeout_seconds,
    )
    install_openlineage_sensor_adapter(adapter)
    library_sensor = openlineage_sensor(
        name=SENSOR_NAME,
        description=description,
        minimum_interval_seconds=lineage.sensor_interval_seconds,
        record_filter_limit=EVENTS_PER_TICK,
        include_asset_events=True,
    )

    # The same sensor, running by default: dagster-openlineage's factory takes no
    # default status, so this one evaluates it (a sensor is callable with its context).
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=lineage.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )
    def _openlineage(context: dg.SensorEvaluationContext) -> Iterator[dg.SkipReason]:
        if context.instance.event_log_storage.is_run_sharded:
            yield dg.SkipReason(RUN_SHARDED)
            return
        yield from library_sensor(context)

    return _openlineage


def lineage_datasets(
    settings: LakehouseSettings,
    specs: Sequence[dg.AssetSpec],
    table_location: TableLocator | None = None,
) -> LakehouseDatasets:
    """The dataset identities of ``specs`` under ``settings`` (silver and gold are Iceberg)."""
    return lakehouse_datasets(
        list(specs),
        job_namespace=settings.lineage.namespace,
        iceberg_namespaces={
            "silver": settings.namespace("silver"),
            "gold": settings.namespace("gold"),
        },
        catalog_name=settings.catalog.name,
        warehouse=settings.warehouse,
        table_location=table_location,
    )
