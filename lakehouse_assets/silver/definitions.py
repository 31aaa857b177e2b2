"""The silver layer's definitions: one multi-asset per dataset, its contract checks in it.

The contract checks of a dataset's tables are ``check_specs`` of its silver
multi-asset: they run in the asset's own step, on the run's branch, before the run
publishes (see :mod:`lakehouse_assets.silver.publishing`).
"""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.silver.assets import build_silver_asset
from resources.settings import LakehouseSettings


def silver_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """The silver multi-asset of every configured dataset."""
    return dg.Definitions(assets=[build_silver_asset(settings, name) for name in settings.datasets])
