"""``lakehouse-branches``: inspect, publish or drop the run branches of a dataset's silver
tables (``--dataset``) or of the gold tables (``--gold``).

A silver or gold run writes to its branch ``audit_<run id>`` and publishes it only when
its blocking checks pass (:mod:`lakehouse_assets.silver.publishing`,
:mod:`lakehouse_assets.gold.publishing`). When they fail, ``main`` stays as it was and
the branch keeps what the run wrote. This command is how a data engineer deals with
such a branch::

    lakehouse-branches list --dataset purchase_orders
    lakehouse-branches publish audit_3f2a... --dataset purchase_orders   # accept it anyway
    lakehouse-branches drop audit_3f2a... --dataset purchase_orders      # throw it away
    lakehouse-branches list --gold

``list`` shows each run branch per table: when it was last written, its rows and
``main``'s, and whether it can still be published (``main`` has not moved since).
``publish`` fast-forwards ``main`` of every table that has the branch, in the order a
run publishes, and refuses when ``main`` moved (rerun the days instead); ``drop``
removes the branch from every table. The environment selects the settings as
everywhere (``LAKEHOUSE_ENV``, ``LAKEHOUSE__…``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.gold.publishing import gold_tables
from lakehouse_assets.silver.publishing import publish_order
from resources.dbt.project import dbt_project
from resources.environments import build_resources
from resources.iceberg.branches import (
    BranchPublishError,
    at_branch,
    can_fast_forward,
    drop_branch,
    run_branches,
)
from resources.iceberg.publishing import loaded_tables, publish_tables
from resources.settings import ConfigError, LakehouseSettings, load_settings

#: What ``--gold`` selects in place of a dataset.
GOLD = None


def _identifiers(settings: LakehouseSettings, dataset: str | None) -> list[tuple[str, str]]:
    """A dataset's silver tables, or with ``None`` the gold tables, in publishing order."""
    if dataset is GOLD:
        manifest = json.loads(dbt_project(settings).manifest_path.read_text())
        return [(settings.namespace("gold"), table) for table in gold_tables(manifest)]
    return publish_order(settings, load_contract(settings.contract_path(dataset)))


def _tables(settings: LakehouseSettings, dataset: str | None) -> list[Any]:
    """The tables of :func:`_identifiers` that exist, in publishing order."""
    iceberg = build_resources(settings)["iceberg"]
    return loaded_tables(iceberg, _identifiers(settings, dataset))


def _label(dataset: str | None) -> str:
    return "gold" if dataset is GOLD else str(dataset)


def list_branches(settings: LakehouseSettings, dataset: str | None) -> list[dict[str, Any]]:
    """One row per table and run branch."""
    rows = []
    for table in _tables(settings, dataset):
        main_rows = table.scan().count() if table.current_snapshot() else 0
        for branch in run_branches(table):
            rows.append(
                {
                    "table": ".".join(table.name()),
                    "branch": branch.name,
                    "last_written": branch.last_written.isoformat(timespec="seconds"),
                    "rows": at_branch(table, branch.name).scan().count(),
                    "main_rows": main_rows,
                    "publishable": can_fast_forward(table, branch.snapshot_id),
                }
            )
    return rows


def publish_branch(settings: LakehouseSettings, dataset: str | None, branch: str) -> dict[str, Any]:
    """Fast-forward main of every table of ``dataset`` (``None``: gold) that has
    ``branch``, as a run publishes (all or none); then drop it."""
    if not any(branch in t.metadata.refs for t in _tables(settings, dataset)):
        raise LookupError(f"no table of {_label(dataset)} has a branch {branch}")
    iceberg = build_resources(settings)["iceberg"]
    log = logging.getLogger("lakehouse-branches")
    return publish_tables(iceberg, _identifiers(settings, dataset), branch, log)


def drop(settings: LakehouseSettings, dataset: str | None, branch: str) -> list[str]:
    """Drop ``branch`` from every table of ``dataset`` (``None``: gold); the tables it
    was on."""
    return [".".join(t.name()) for t in _tables(settings, dataset) if drop_branch(t, branch)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lakehouse-branches", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("list", "run branches of the dataset's silver tables, or of gold's"),
        ("publish", "fast-forward main of every table to the branch, then drop it"),
        ("drop", "remove the branch from every table"),
    ):
        command = commands.add_parser(name, help=text)
        which = command.add_mutually_exclusive_group(required=True)
        which.add_argument("--dataset", help="a dataset of the configuration: its silver tables")
        which.add_argument("--gold", action="store_true", help="the gold tables (dbt models)")
        if name != "list":
            command.add_argument("branch", help="the run branch, audit_<run id>")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        dataset = GOLD if args.gold else args.dataset
        if dataset is not GOLD:
            settings.dataset(dataset)
        if args.command == "list":
            rows = list_branches(settings, dataset)
            if not rows:
                print(f"{_label(dataset)}: no run branches")
            for row in rows:
                state = "publishable" if row["publishable"] else "main moved: rerun instead"
                print(
                    f"{row['table']}  {row['branch']}  written {row['last_written']}  "
                    f"{row['rows']} rows (main {row['main_rows']})  {state}"
                )
        elif args.command == "publish":
            for table, snapshot in publish_branch(settings, dataset, args.branch).items():
                print(f"published {table}: main is snapshot {snapshot}")
        else:
            tables = drop(settings, dataset, args.branch)
            print(f"dropped {args.branch} from {', '.join(tables) or 'no table'}")
    except (ConfigError, LookupError, BranchPublishError) as exc:
        print(f"lakehouse-branches: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
