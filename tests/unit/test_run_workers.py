"""Run monitoring sees a run whose worker process is gone (resources/run_launcher.py)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.events import EngineEventData  # how run workers record their pid

from resources.run_launcher import LocalRunLauncher, WorkerState, process_state


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_live_process_that_started_before_the_record_is_alive(
    sleeper: subprocess.Popen[bytes],
) -> None:
    assert process_state(sleeper.pid, started_before=time.time()) is WorkerState.ALIVE


def test_a_killed_process_is_dead(sleeper: subprocess.Popen[bytes]) -> None:
    sleeper.send_signal(signal.SIGKILL)
    sleeper.wait()
    assert process_state(sleeper.pid, started_before=time.time()) is WorkerState.DEAD


def test_a_killed_process_not_yet_reaped_is_dead(sleeper: subprocess.Popen[bytes]) -> None:
    sleeper.send_signal(signal.SIGKILL)
    time.sleep(0.5)  # a zombie until its parent (this test) reaps it
    assert process_state(sleeper.pid, started_before=time.time()) is WorkerState.DEAD


def test_a_process_younger_than_the_record_holds_a_reused_pid(
    sleeper: subprocess.Popen[bytes],
) -> None:
    assert process_state(sleeper.pid, started_before=time.time() - 3600) is WorkerState.DEAD


@dg.asset
def _tiny() -> int:
    return 1


def _health(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    launcher = instance.run_launcher
    assert isinstance(launcher, LocalRunLauncher)
    assert launcher.supports_check_run_worker_health
    return launcher.check_run_worker_health(run).status.value


def test_run_monitoring_fails_a_run_whose_recorded_worker_was_killed(
    sleeper: subprocess.Popen[bytes],
) -> None:
    overrides = {"run_launcher": {"module": "resources.run_launcher", "class": "LocalRunLauncher"}}
    with dg.instance_for_test(overrides=overrides) as instance:
        run = dg.materialize([_tiny], instance=instance).dagster_run
        assert _health(instance, run) == "RUNNING"  # no pid recorded: an in-process run

        instance.report_engine_event(
            f"Started process for run (pid: {sleeper.pid}).",
            run,
            EngineEventData.in_process(sleeper.pid),
        )
        assert _health(instance, run) == "RUNNING"

        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
        assert _health(instance, run) == "FAILED"
