"""Publishing a run branch across several tables, all or none, and cleaning up after runs.

The catalogs we support commit one table at a time (pyiceberg 0.12 has no multi-table
commit, and the JDBC and Glue catalogs none either), so a run's publish is a sequence
of fast-forwards (:func:`publish_tables`), each atomic on its own and taking
milliseconds, after every table was checked to be publishable. The layers decide the
order: :mod:`lakehouse_assets.silver.publishing`, :mod:`lakehouse_assets.gold.publishing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from resources.iceberg.branches import (
    BranchPublishError,
    can_fast_forward,
    drop_branch,
    publish,
    stale_branches,
)
from resources.iceberg.catalog import IcebergCatalogResource


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
