"""The Dagster instance of a ``DAGSTER_HOME`` other than this process's own."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg


def instance_at(home: Path) -> dg.DagsterInstance:
    """The instance whose ``dagster.yaml`` is in ``home`` (a `make dev`'s, a benchmark's).

    ``config/dagster.yaml`` places the event log under ``$DAGSTER_HOME``, which Dagster
    reads when the instance is made: with this process's own DAGSTER_HOME (or none) the
    instance would read another event log, so ``home`` stands in for it meanwhile.
    """
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        return dg.DagsterInstance.from_config(str(home))
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous
