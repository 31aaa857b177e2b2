"""Run branches of Iceberg tables, for write-audit-publish.

A run that writes with audit writes every table to a branch of its own
(:func:`run_branch`), created from ``main``'s current snapshot
(:func:`ensure_branch`), so no reader of ``main`` sees its rows. Its checks read that
branch; when they pass, :func:`publish` fast-forwards ``main`` to the branch's head,
which carries the run's snapshot properties. A branch whose run failed, or whose
checks failed, stays for inspection until :func:`stale_branches` finds it older than
the configured age and :func:`drop_branch` removes it.

Publishing is a fast-forward only: if ``main`` moved since the branch was created
(another writer committed), :class:`BranchPublishError` says so and ``main`` stays as
it is; a rerun branches from the new ``main``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.table import Table

MAIN = "main"
#: Prefix of every run branch: only these are ever published or cleaned up.
BRANCH_PREFIX = "audit_"


class BranchPublishError(RuntimeError):
    """``main`` cannot be fast-forwarded to a run branch; ``main`` is unchanged."""


def run_branch(run_id: str) -> str:
    """The branch of the run ``run_id``: ``audit_<run id without dashes>``.

    Only letters, digits and underscores, so that Spark can name it in an identifier
    (``catalog.namespace.table.branch_audit_…``).
    """
    name = re.sub(r"[^0-9A-Za-z_]", "", run_id)
    if not name:
        raise ValueError(f"run id {run_id!r} has no letter or digit to name a branch")
    return BRANCH_PREFIX + name


def ensure_branch(table: Table, branch: str) -> Table:
    """Create ``branch`` at ``main``'s current snapshot unless it exists; the table, reloaded.

    Iceberg branches only from a snapshot: a table that has none (just created) first
    gets an empty one on ``main``, which readers see as the same empty table.
    """
    if branch in table.metadata.refs:
        return table
    current = table.current_snapshot()
    if current is None:
        table.append(table.schema().as_arrow().empty_table())
        table = table.refresh()
        current = table.current_snapshot()
        if current is None:
            raise RuntimeError(f"Iceberg table {'.'.join(table.name())}: no snapshot to branch")
    with table.manage_snapshots() as snapshots:
        snapshots.create_branch(current.snapshot_id, branch)
    return table.refresh()


def at_branch(table: Table, branch: str | None) -> Table:
    """A read-only view of ``table`` whose current state is ``branch``'s head.

    Everything that reads the current snapshot (scans, ``inspect``, counts) then reads
    the branch. ``main`` itself, no branch, or a branch that does not exist: ``table``.
    """
    from pyiceberg.table import Table as IcebergTable

    head = branch_head(table, branch) if branch and branch != MAIN else None
    if head is None:
        return table
    metadata = table.metadata.model_copy(update={"current_snapshot_id": head})
    return IcebergTable(
        identifier=table.name(),
        metadata=metadata,
        metadata_location=table.metadata_location,
        io=table.io,
        catalog=table.catalog,
    )


def branch_head(table: Table, branch: str) -> int | None:
    """The snapshot id ``branch`` points at, or None when there is no such branch."""
    ref = table.metadata.refs.get(branch)
    return ref.snapshot_id if ref is not None else None


def can_fast_forward(table: Table, head: int) -> bool:
    """Whether ``main`` is empty or an ancestor of snapshot ``head`` (it has not moved
    since a branch now at ``head`` was created from it)."""
    from pyiceberg.table.snapshots import ancestors_of

    current = table.current_snapshot()
    if current is None:
        return True
    lineage = {s.snapshot_id for s in ancestors_of(table.snapshot_by_id(head), table.metadata)}
    return current.snapshot_id in lineage


def publish(table: Table, branch: str) -> int | None:
    """Fast-forward ``main`` to ``branch``'s head; the snapshot id now current on ``main``.

    Nothing to do (``None`` returned) when the branch does not exist, i.e. the run
    wrote nothing to this table.

    Raises:
        BranchPublishError: ``main`` is not an ancestor of the branch's head (another
            writer committed to ``main`` after the branch was created).
    """
    head = branch_head(table, branch)
    if head is None:
        return None
    current = table.current_snapshot()
    if current is not None and current.snapshot_id != head and not can_fast_forward(table, head):
        raise BranchPublishError(
            f"Iceberg table {'.'.join(table.name())}: main moved to snapshot "
            f"{current.snapshot_id} after branch {branch} was created from an older one; "
            "main is unchanged. Re-run to branch from the new main."
        )
    if current is None or current.snapshot_id != head:
        # pyiceberg's commit asserts main is still where it was read: a concurrent
        # commit to main fails this one instead of being overwritten.
        with table.manage_snapshots() as snapshots:
            snapshots.set_current_snapshot(snapshot_id=head)
    return head


def drop_branch(table: Table, branch: str) -> bool:
    """Remove ``branch`` (its snapshots become unreferenced); whether it existed."""
    if branch == MAIN:
        raise ValueError("main is never dropped")
    if branch not in table.metadata.refs:
        return False
    with table.manage_snapshots() as snapshots:
        snapshots.remove_branch(branch)
    return True


@dataclass(frozen=True)
class RunBranch:
    """A run branch of a table and when it was last written."""

    name: str
    snapshot_id: int
    last_written: datetime


def run_branches(table: Table) -> list[RunBranch]:
    """The table's run branches (``audit_…``), oldest write first."""
    found = []
    for name, ref in table.metadata.refs.items():
        if not name.startswith(BRANCH_PREFIX):
            continue
        snapshot = table.snapshot_by_id(ref.snapshot_id)
        millis = snapshot.timestamp_ms if snapshot is not None else 0
        found.append(RunBranch(name, ref.snapshot_id, datetime.fromtimestamp(millis / 1000, UTC)))
    return sorted(found, key=lambda b: b.last_written)


def stale_branches(
    table: Table, older_than: timedelta, now: datetime | None = None, keep: Iterable[str] = ()
) -> list[RunBranch]:
    """Run branches last written more than ``older_than`` ago, except those in ``keep``."""
    moment = now or datetime.now(UTC)
    kept = set(keep)
    return [
        b
        for b in run_branches(table)
        if b.name not in kept and moment - b.last_written > older_than
    ]
