"""Write-audit-publish of a silver run: its tables on a run branch, published together.

With ``catalog.write_audit_publish`` (the default) a silver run writes every table of
its dataset (and the quarantine) to the branch ``audit_<run id>``. Its blocking checks
(the reconciliation and the contract checks, evaluated in the run's own step) read that
branch; only when all of them pass does :func:`publish_tables` fast-forward ``main`` of
each table to it, so no reader of ``main`` ever sees rows that failed a blocking check
or a run that stopped half-way. A failed check, error or kill leaves ``main`` as it
was and the branch for inspection (its name is in the run's logs and in every
output's metadata); :func:`drop_stale_branches` removes such branches once they are
older than ``catalog.audit_branch_max_age_days``.

The catalogs we support commit one table at a time (pyiceberg 0.12 has no multi-table
commit, and the JDBC and Glue catalogs none either), so the publish is a sequence of
fast-forwards, each atomic on its own and taking milliseconds: the quarantine first,
then the tables in the contract's order. A reader that queries during those
milliseconds can see one table of the new run beside another of the previous run (the
same lag as between two consecutive runs), never rows of a run whose checks failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import dagster as dg

from lakehouse_assets.contracts.model import Contract
from lakehouse_assets.silver.check_plans import CheckPlan
from resources.iceberg.branches import (
    BranchPublishError,
    can_fast_forward,
    drop_branch,
    publish,
    stale_branches,
)
from resources.iceberg.catalog import IcebergCatalogResource
from resources.settings import LakehouseSettings


def publish_order(settings: LakehouseSettings, contract: Contract) -> list[tuple[str, str]]:
    """The identifiers of a dataset's silver tables in the order a run publishes them:
    the quarantine, then the contract's tables."""
    namespace = settings.namespace("silver")
    return [(namespace, table) for table in (contract.quarantine_table, *contract.tables)]


def loaded_tables(
    iceberg: IcebergCatalogResource, identifiers: Iterable[tuple[str, str]]
) -> list[Any]:
    """The tables of ``identifiers`` that exist, loaded, in that order."""
    from pyiceberg.exceptions import NoSuchTableError

    catalog = iceberg.load()
    tables = []
    for identifier in identifiers:
        try:
            tables.append(catalog.load_table(identifier))
        except NoSuchTableError:
            continue
    return tables


def drop_stale_branches(
    iceberg: IcebergCatalogResource,
    identifiers: Iterable[tuple[str, str]],
    max_age: timedelta,
    log: Any,
) -> list[str]:
    """Drop the run branches of these tables older than ``max_age``; ``table@branch``s."""
    dropped = []
    for table in loaded_tables(iceberg, identifiers):
        for branch in stale_branches(table, max_age):
            if drop_branch(table.refresh(), branch.name):
                name = ".".join(table.name())
                dropped.append(f"{name}@{branch.name}")
                log.info(
                    f"dropped run branch {branch.name} of {name}: not published, last written "
                    f"{branch.last_written.isoformat(timespec='seconds')}"
                )
    return dropped


def publish_tables(
    iceberg: IcebergCatalogResource,
    identifiers: Sequence[tuple[str, str]],
    branch: str,
    log: Any,
) -> dict[str, int | None]:
    """Fast-forward ``main`` of each table that has ``branch``, in order, then drop the
    branch (``main`` now points at the same snapshot). Table name -> snapshot on ``main``.

    Every table is checked first: when ``main`` of one moved since the branch was
    created, :class:`BranchPublishError` names it and no table is published.
    """
    tables = [t for t in loaded_tables(iceberg, identifiers) if branch in t.metadata.refs]
    moved = [
        ".".join(t.name())
        for t in tables
        if not can_fast_forward(t, t.metadata.refs[branch].snapshot_id)
    ]
    if moved:
        raise BranchPublishError(
            f"main of {', '.join(moved)} moved after branch {branch} was created: no table "
            "was published. Rerun the days (they branch from the new main), or drop the branch."
        )
    published: dict[str, int | None] = {}
    for table in tables:
        published[".".join(table.name())] = publish(table, branch)
        drop_branch(table.refresh(), branch)
    log.info(f"published run branch {branch} to main: {published}")
    return published


def audit(
    plans: Sequence[CheckPlan], context: Any, branch: str | None
) -> tuple[list[dg.AssetCheckResult], list[str]]:
    """Every check's result on what the run wrote (``branch``, or main without one), and
    the names of the blocking checks that failed with severity ERROR."""
    results = [plan.evaluate(context, branch) for plan in plans]
    failed = [
        plan.name
        for plan, result in zip(plans, results, strict=True)
        if plan.blocking and not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    ]
    return results, failed
