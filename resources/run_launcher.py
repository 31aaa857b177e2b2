"""A run launcher for one machine whose run monitoring sees runs that died.

Dagster's default run launcher starts each run in a process of the code server and
records its pid in the run's "Started process for run (pid: N)" engine event, but it
cannot tell run monitoring that the process died: a run whose process was killed
(``kill -9``, the OOM killer) together with its code server stays STARTED forever, and
the pool slots its steps claimed stay taken, so every later run of the pool waits.
:class:`LocalRunLauncher` is the default launcher plus a health check on that pid, so
run monitoring (``run_monitoring`` in dagster.yaml) marks such runs failed, and frees
their slots after ``free_slots_after_run_end_seconds``.

Dagster exports no public names for a health check's result; they come through
:func:`resources.private_apis.run_worker_health`.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from resources.private_apis import run_worker_health
from resources.processes import pid_exists

if TYPE_CHECKING:
    from resources.private_apis import CheckRunHealthResult


class WorkerState(Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"
    """No pid recorded (an in-process run, or one not started yet), or no way to look."""


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the run's worker process and when it was recorded (epoch seconds)."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.engine_event_data if event is not None else None
        if data is None or "pid" not in data.metadata or "step_keys" in data.metadata:
            continue  # step workers record their step keys with their pid
        try:
            return int(str(data.metadata["pid"].value)), record.timestamp
        except ValueError:
            continue
    return None


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def process_state(pid: int, started_before: float) -> WorkerState:
    """Whether ``pid`` is a live process that started no later than ``started_before``.

    A zombie counts as dead. A process that started after ``started_before`` holds a
    reused pid, so the process recorded then is dead too.
    """
    stat_file = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():  # no procfs (macOS): existence only
        return WorkerState.ALIVE if pid_exists(pid) else WorkerState.DEAD
    try:
        stat = stat_file.read_text()
    except OSError:
        return WorkerState.DEAD
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return WorkerState.DEAD
    boot = _boot_time()
    if boot is not None:
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        if started > started_before + 1.0:
            return WorkerState.DEAD
    return WorkerState.ALIVE


def run_worker_state(instance: dg.DagsterInstance, run_id: str) -> WorkerState:
    """Whether the run's worker process on this machine is alive (see :func:`process_state`)."""
    recorded = run_worker_pid(instance, run_id)
    if recorded is None:
        return WorkerState.UNKNOWN
    pid, when = recorded
    return process_state(pid, started_before=when)


class LocalRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default run launcher, with a health check for run monitoring.

    Use it where the daemon runs on the machine that runs the code servers (``dagster
    dev``, one host); a deployment across hosts uses its platform's launcher (Kubernetes,
    ECS, Docker), whose health checks Dagster provides.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        # Unknown is not dead: an in-process run records no pid.
        dead = run_worker_state(self._instance, run.run_id) is WorkerState.DEAD
        return run_worker_health(
            not dead, "the run's worker process is gone (killed or crashed)" if dead else ""
        )
