"""Asset group names, shared by layers that must not import each other's modules."""

from __future__ import annotations

#: Gold's dbt models, snapshots and seeds (importing ``lakehouse_assets.gold`` loads
#: dagster-dbt, which bronze and silver do not need).
GOLD_GROUP = "gold"

#: The layers of the data flow. A dataset's refresh run rebuilds these only: what is
#: downstream of them (table maintenance, serving exports) runs on its own schedules and
#: automation, not in every refresh.
PIPELINE_GROUPS = ("bronze", "silver", GOLD_GROUP)
