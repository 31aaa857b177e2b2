"""The serving layer's definitions: one export asset (and its check) per exported model."""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.serving.assets import build_dynamodb_export
from resources.settings import LakehouseSettings


def serving_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """Nothing when ``serving.dynamodb.enabled`` is false or no model is exported."""
    dynamodb = settings.serving.dynamodb
    if not dynamodb.enabled:
        return dg.Definitions()
    built = [
        definition
        for model, export in dynamodb.exports.items()
        for definition in build_dynamodb_export(settings, model, export)
    ]
    checks = [d for d in built if isinstance(d, dg.AssetChecksDefinition)]
    assets = [d for d in built if d not in checks]
    return dg.Definitions(assets=assets, asset_checks=checks)
