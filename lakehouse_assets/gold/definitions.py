"""The gold layer's Definitions, built from the settings (see the package docstring)."""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.gold.assets import build_gold_assets
from resources.dbt.project import dbt_project
from resources.settings import LakehouseSettings


def gold_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """The gold assets of the configured dbt project (its manifest parsed if stale)."""
    return dg.Definitions(assets=build_gold_assets(settings, dbt_project(settings)))
