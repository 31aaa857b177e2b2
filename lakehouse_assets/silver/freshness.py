"""Dagster freshness policies from the contracts' SLA, and the contract freshness checks
that run on their own schedule.

Two views of freshness, each where it belongs:

* **Dagster freshness policies** (``FreshnessPolicy.time_window``, evaluated by the
  daemon when ``freshness: enabled`` is set in ``dagster.yaml``): every silver table
  of a dataset fails once its last materialisation is older than the contract's SLA
  ``latency`` and warns at ``quality.freshness.warn_fraction`` of it; a gold model
  reading silver tables gets the longest of their SLAs plus
  ``quality.freshness.gold_allowance_minutes``. The UI shows the state on every asset.
* **The contract freshness check** (``contract_freshness``: the newest row's time
  against the SLA, on ``main``) is about the data, not about a run: it is not part of
  silver's own step (it cannot hold a publish back) but a standalone check, run on
  ``quality.freshness.check_cron`` (job and schedule ``contract_freshness``) and as a
  step of its own in runs that select the silver tables with their checks. In such a
  run it judges only when the run reaches one of the days automation keeps current
  (:func:`not_judged_reason`): a backfill of older days leaves the check skipped
  (Dagster's ``SKIPPED``), so the table's last real evaluation stays its state and
  rebuilding history never reports a stale table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta

import dagster as dg

from lakehouse_assets.contracts.model import Contract
from resources.config_sections import FreshnessSettings

#: The job and schedule of every contract freshness check.
FRESHNESS_JOB = "contract_freshness"

_PARTITION_TAG = "dagster/partition"
_RANGE_END_TAG = "dagster/asset_partition_range_end"


def not_judged_reason(tags: Mapping[str, str], today: date, current_days: int) -> str | None:
    """Why the table-wide freshness check does not judge in a run with ``tags`` (``None``:
    it does).

    It judges in runs without a partition (its own job, the UI's "Execute" on the check)
    and in runs whose last partition is one of the ``current_days`` newest days up to
    ``today``: the runs that bring new data. A run rebuilding only older days (a
    backfill) says nothing about how fresh the table is.
    """
    last = tags.get(_RANGE_END_TAG) or tags.get(_PARTITION_TAG)
    if last is None:
        return None
    first_current = today - timedelta(days=current_days - 1)
    try:
        last_day = date.fromisoformat(last)
    except ValueError:
        return None
    if last_day >= first_current:
        return None
    return (
        f"the run rebuilt days up to {last}, older than the {current_days} current days "
        f"({first_current.isoformat()} to {today.isoformat()}): a backfill says nothing about "
        f"the table's freshness, which the {FRESHNESS_JOB} schedule judges"
    )


def sla_policy(
    latency: timedelta, settings: FreshnessSettings, allowance: timedelta = timedelta(0)
) -> dg.FreshnessPolicy:
    """Fail once the last materialisation is ``latency + allowance`` old, warn at
    ``warn_fraction`` of it (Dagster needs both windows to be at least a minute)."""
    fail = max(latency + allowance, timedelta(minutes=2))
    warn = max(fail * settings.warn_fraction, timedelta(minutes=1))
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


def contract_policy(contract: Contract, settings: FreshnessSettings) -> dg.FreshnessPolicy | None:
    """The policy of every table of ``contract`` (None: the contract has no SLA)."""
    latency = contract.latency()
    return sla_policy(latency, settings) if latency is not None else None


def table_latencies(contracts: Iterable[Contract]) -> dict[str, timedelta]:
    """Each silver table's SLA latency, by table name (tables of contracts without one
    are absent)."""
    return {
        table: latency
        for contract in contracts
        if (latency := contract.latency()) is not None
        for table in contract.tables
    }


def downstream_policy(
    read_tables: Iterable[str], latencies: Mapping[str, timedelta], settings: FreshnessSettings
) -> dg.FreshnessPolicy | None:
    """The policy of a gold model reading the silver tables ``read_tables``: the longest
    of their SLAs plus the gold allowance (None when none of them has an SLA)."""
    known = [latencies[t] for t in read_tables if t in latencies]
    if not known:
        return None
    return sla_policy(max(known), settings, timedelta(minutes=settings.gold_allowance_minutes))
