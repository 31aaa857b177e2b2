"""Gold: dbt models on the silver tables (facts, daily sales, customer history).

The dbt project in ``dbt/`` is the source of truth; :mod:`lakehouse_assets.gold.assets`
turns its models, snapshots and seeds into Dagster assets and its tests into
asset checks.
"""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.gold.assets import build_gold_assets
from resources.dbt.project import dbt_project
from resources.settings import LakehouseSettings


def gold_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """The gold assets of the configured dbt project (its manifest parsed if stale)."""
    return dg.Definitions(assets=build_gold_assets(settings, dbt_project(settings)))
