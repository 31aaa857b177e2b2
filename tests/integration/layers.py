"""Silver and gold of a dataset as single runs, importable by a test's child process.

Kept apart from the test modules: importing one of them imports ``tests.conftest``,
which gives the importing process a test data directory and ports of its own, so a
child process that must use its parent's stack would not find it.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from lakehouse_assets.gold.assets import build_gold_assets
from lakehouse_assets.silver.assets import build_silver_asset
from resources.dbt.project import dbt_project
from resources.environments import build_resources
from resources.settings import LakehouseSettings

#: Check metadata that differs between any two runs: dbt's invocation and timing, and
#: when the freshness check looked, and the run branch (named by the run id).
_VOLATILE = frozenset(
    {"invocation_id", "Execution Duration", "checked_at", "lag_seconds", "branch"}
)


def build_layers(
    settings: LakehouseSettings, dataset: str, first: str, last: str
) -> dict[str, Any]:
    """Silver, then gold (seeds first) of ``dataset`` for ``first``..``last``, as single runs.

    Silver runs with its contract checks. Returns the failures of the first run that
    failed and every asset check's result (name, asset, passed, and the metadata but
    what differs between any two runs, :data:`_VOLATILE`), in a form both processes
    print and compare.
    """
    resources = build_resources(settings)
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    silver = build_silver_asset(settings, dataset)
    gold = build_gold_assets(settings, dbt_project(settings))
    seeds = [a for a in gold if a.partitions_def is None]
    below = dg.AssetSelection.assets(*silver.keys)
    runs = {
        "silver": lambda: dg.materialize(
            [silver], resources=resources, tags=tags, raise_on_error=False
        ),
        "seeds": lambda: dg.materialize(seeds, resources=resources, raise_on_error=False),
        "gold": lambda: dg.materialize(
            [*gold, silver],
            selection=below.downstream() - below,
            resources=resources,
            tags=tags,
            raise_on_error=False,
        ),
    }
    out: dict[str, Any] = {"failures": {}, "checks": []}
    for name, run in runs.items():
        result = run()
        if not result.success:
            out["failures"][name] = [
                e.step_failure_data.error.to_string()
                for e in result.get_step_failure_events()
                if e.step_failure_data.error is not None
            ]
            break
        for event in result.all_events:
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                check = event.asset_check_evaluation_data
                out["checks"].append(
                    {
                        "name": check.check_name,
                        "asset": check.asset_key.to_user_string(),
                        "passed": check.passed,
                        "metadata": {
                            k: v.value for k, v in check.metadata.items() if k not in _VOLATILE
                        },
                    }
                )
    return json.loads(json.dumps(out, default=str))
