"""Asset group names, shared by layers that must not import each other's modules."""

from __future__ import annotations

#: Gold's dbt models, snapshots and seeds (importing ``lakehouse_assets.gold`` loads
#: dagster-dbt, which bronze and silver do not need).
GOLD_GROUP = "gold"
