"""The Definitions object that workspace.yaml loads: the lakehouse's table of contents.

Each layer contributes the assets, checks, sensors, schedules and jobs that its
factories make from the configured datasets; resources come from one place
(:func:`resources.environments.build_resources`) for the environment selected by
``LAKEHOUSE_ENV``.
"""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.bronze.definitions import bronze_definitions
from lakehouse_assets.gold.definitions import gold_definitions
from lakehouse_assets.maintenance.definitions import maintenance_definitions
from lakehouse_assets.serving.definitions import serving_definitions
from lakehouse_assets.silver.definitions import silver_definitions
from resources.environments import build_resources
from resources.lineage.sensor import build_lineage_sensor, table_locator
from resources.settings import get_settings

settings = get_settings()

#: How often declarative automation evaluates the assets' automation conditions.
AUTOMATION_INTERVAL_SECONDS = 30

automation = dg.AutomationConditionSensorDefinition(
    "lakehouse_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
    description=(
        "Evaluates the automation conditions of silver and gold: a layer updates when the "
        "partitions it reads from have new data (late records included)."
    ),
)

resources = build_resources(settings)

defs = dg.Definitions.merge(
    bronze_definitions(settings),
    silver_definitions(settings),
    gold_definitions(settings),
    maintenance_definitions(settings),
    serving_definitions(settings),
    # Steps of a run share one process: one Spark session (one JVM) serves every
    # Spark step of a run, instead of one per step process.
    dg.Definitions(sensors=[automation], resources=resources, executor=dg.in_process_executor),
)

# OpenLineage: every materialisation and check result of the assets above, as events.
lineage = build_lineage_sensor(
    settings, defs.resolve_all_asset_specs(), table_locator(resources["iceberg"])
)
if lineage is not None:
    defs = dg.Definitions.merge(defs, dg.Definitions(sensors=[lineage]))
