"""Write-audit-publish of a silver run: its tables on a run branch, published together.

With ``catalog.write_audit_publish`` (the default) a silver run writes every table of
its dataset (and the quarantine) to the branch ``audit_<run id>``. Its blocking checks
(the reconciliation and the contract checks, evaluated in the run's own step) read that
branch; only when all of them pass does
:func:`resources.iceberg.publishing.publish_tables` fast-forward ``main`` of
each table to it, so no reader of ``main`` ever sees rows that failed a blocking check
or a run that stopped half-way. A failed check, error or kill leaves ``main`` as it
was and the branch for inspection (its name is in the run's logs and in every
output's metadata); :func:`resources.iceberg.publishing.drop_stale_branches` removes
such branches once they are older than ``catalog.audit_branch_max_age_days``.

The catalogs we support commit one table at a time (pyiceberg 0.12 has no multi-table
commit, and the JDBC and Glue catalogs none either), so the publish is a sequence of
fast-forwards, each atomic on its own and taking milliseconds: the quarantine first,
then the tables in the contract's order. A reader that queries during those
milliseconds can see one table of the new run beside another of the previous run (the
same lag as between two consecutive runs), never rows of a run whose checks failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from lakehouse_assets.contracts.model import Contract
from lakehouse_assets.silver.check_plans import CheckPlan
from resources.settings import LakehouseSettings


def publish_order(settings: LakehouseSettings, contract: Contract) -> list[tuple[str, str]]:
    """The identifiers of a dataset's silver tables in the order a run publishes them:
    the quarantine, then the contract's tables."""
    namespace = settings.namespace("silver")
    return [(namespace, table) for table in (contract.quarantine_table, *contract.tables)]


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
