"""What every contract check of one silver table shares, and a check as a plan that runs
standalone or inside the asset's own step.

A :class:`CheckPlan` is a check's spec plus its evaluation ``(context, ref)``: as a
standalone ``@asset_check`` (:meth:`CheckPlan.definition`) it reads ``main``; inside
the silver multi-asset (its ``check_specs``) it reads the run's branch before the run
publishes it (write-audit-publish).
"""

# No `from __future__ import annotations`: Dagster reads the check functions'
# annotations at definition time.
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg

from lakehouse_assets.contracts.document import Severity
from lakehouse_assets.contracts.model import Contract, RowRule, TableRule
from lakehouse_assets.silver.check_reading import _Target

Clock = Callable[[], datetime]

#: A check's evaluation: the step's context (a check's or the asset's) and the branch to
#: read (``None``: main).
Evaluate = Callable[[Any, "str | None"], dg.AssetCheckResult]

#: Whether a standalone check judges in the run of ``context``: ``None`` when it does,
#: else why not (the step then yields no result and Dagster records the check as
#: skipped, keeping its last real evaluation as the asset's health).
Judges = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class CheckPlan:
    """One check: its ``@asset_check`` arguments and its evaluation."""

    arguments: Mapping[str, Any]
    evaluate: Evaluate
    resource_keys: frozenset[str] = field(default_factory=frozenset)
    judges: Judges | None = None

    @property
    def name(self) -> str:
        return str(self.arguments["name"])

    @property
    def blocking(self) -> bool:
        return bool(self.arguments.get("blocking"))

    def spec(self) -> dg.AssetCheckSpec:
        """The check as one of an asset's ``check_specs``: evaluated in the asset's step,
        after every output is written, so it takes no extra dependency."""
        arguments = {k: v for k, v in self.arguments.items() if k != "additional_deps"}
        return dg.AssetCheckSpec(**arguments)

    def definition(self) -> dg.AssetChecksDefinition:
        """The check as a standalone ``@asset_check`` step, reading ``main``. A plan that
        does not judge every run (:data:`Judges`) is a one-check ``@multi_asset_check``
        instead, whose step may end without a result: it logs why and Dagster records
        the check as skipped."""
        evaluate, judges, name = self.evaluate, self.judges, self.name
        if judges is None:

            @dg.asset_check(**self.arguments, required_resource_keys=set(self.resource_keys))
            def check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
                return evaluate(context, None)

            return check

        spec = dg.AssetCheckSpec(**self.arguments)

        @dg.multi_asset_check(
            specs=[spec],
            name=spec.get_python_identifier(),
            can_subset=True,
            required_resource_keys=set(self.resource_keys),
        )
        def judged_check(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
            reason = judges(context)
            if reason is not None:
                context.log.info(f"{name} not judged in this run: {reason}")
                return
            yield evaluate(context, None)

        return judged_check


@dataclass(frozen=True)
class CheckSite:
    """What every check of one contract table shares: the asset, where it is stored, how
    a run's rows are selected, how results are labelled."""

    contract: Contract
    table: str
    asset_key: dg.AssetKey
    partitions_def: dg.PartitionsDefinition | None
    target: _Target
    keys: Sequence[str]
    table_wide_keys: bool
    related_assets: Mapping[str, dg.AssetKey]
    sample_size: int
    clock: Clock
    #: The newest days (as of ``clock``) a run must reach for the table-wide
    #: freshness check to judge in it (``None``: every run).
    current_days: int | None = None

    @property
    def label(self) -> str:
        contract = self.contract
        return f"{contract.dataset}.{self.table} (contract {contract.path.name} {contract.version})"

    def plan(
        self, judges: Judges | None = None, **arguments: Any
    ) -> Callable[[Evaluate], CheckPlan]:
        """Decorates an evaluation into the :class:`CheckPlan` of a check on this table."""

        asset_key, name = self.asset_key, arguments["name"]

        def wrap(evaluate: Evaluate) -> CheckPlan:
            def named(context: Any, ref: str | None) -> dg.AssetCheckResult:
                # Named: a multi-asset's step has several assets and checks to choose from.
                result = evaluate(context, ref)
                return dg.AssetCheckResult(
                    passed=result.passed,
                    asset_key=asset_key,
                    check_name=name,
                    metadata=result.metadata,
                    severity=result.severity,
                    description=result.description,
                )

            return CheckPlan(
                {"asset": asset_key, **arguments},
                named,
                frozenset({self.target.io_manager_key}),
                judges,
            )

        return wrap


def rules_metadata(rules: Sequence[RowRule | TableRule]) -> dict[str, Any]:
    return {"contract_rules": [r.id for r in rules]}


def blocking(severities: Iterable[Severity]) -> bool:
    return any(s == "error" for s in severities)
