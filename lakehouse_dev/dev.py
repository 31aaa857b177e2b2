"""``make dev``: the Dagster UI and daemon (``dg dev``), stopped with everything they started.

``dg dev`` (which supersedes ``dagster dev`` and, given a workspace file, runs the same
code) stops on SIGINT, and takes SIGTERM to mean the same, but only if SIGINT is not
ignored when it starts: it copies SIGINT's handler to SIGTERM. A program started in
the background of a script (``make dev &``, a service manager, an IDE's task runner)
inherits SIGINT ignored, and then ignores both signals, so its webserver, daemon and
code servers run on until killed one by one. Runs in flight keep code servers up as
well, since a code server waits for its runs to finish.

This supervisor runs ``dg dev`` as the leader of a process group of its own,
with default signal handling whatever it inherited. On SIGINT, SIGTERM or SIGHUP
it interrupts the group (as Ctrl-C in a terminal does), and what is left of the
group after a grace period (code servers, run workers) is terminated, then killed.
The shared Spark driver leaves the group on purpose (it outlives runs); it stops
when idle or with ``lakehouse-stack stop``.

Run as ``python -m lakehouse_dev.dev [--host H] [--port P]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from lakehouse_dev.processes import group_alive
from resources.settings import PROJECT_ROOT

#: How long ``dg dev`` gets to shut its services down after the interrupt.
INTERRUPT_GRACE_SECONDS = 30.0
#: How long what is left of the group gets after SIGTERM, before SIGKILL.
TERMINATE_GRACE_SECONDS = 10.0


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_group(child: subprocess.Popen[bytes], timeout: float) -> bool:
    """Until the child has exited and its group is empty; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.poll()  # reap our child, or it stays in the group as a zombie
        if child.returncode is not None and not group_alive(child.pid):
            return True
        time.sleep(0.2)
    child.poll()
    return child.returncode is not None and not group_alive(child.pid)


def stop_group(child: subprocess.Popen[bytes]) -> None:
    """Interrupt the group like Ctrl-C, then SIGTERM and SIGKILL what does not exit."""
    for signum, grace in (
        (signal.SIGINT, INTERRUPT_GRACE_SECONDS),
        (signal.SIGTERM, TERMINATE_GRACE_SECONDS),
        (signal.SIGKILL, TERMINATE_GRACE_SECONDS),
    ):
        _signal_group(child.pid, signum)
        if _wait_group(child, grace):
            return
    print(f"lakehouse dev: process group {child.pid} did not exit", file=sys.stderr)


def run(argv: list[str]) -> int:
    """Run ``argv`` as a process group under supervision until it exits or a signal comes."""
    requested = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        requested.set()

    # Python handlers (unlike SIG_IGN) reset to the default in the exec'd child, so
    # ``dg dev`` starts with SIGINT and SIGTERM handled, whatever we inherited.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    child = subprocess.Popen(argv, cwd=PROJECT_ROOT, start_new_session=True)
    while child.poll() is None and not requested.wait(0.5):
        pass
    stop_group(child)
    return 0 if requested.is_set() else (child.returncode or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lakehouse-dev",
        description=__doc__.splitlines()[0] if __doc__ else None,
        add_help=False,
    )
    parser.add_argument("--help", action="help")
    parser.add_argument("-h", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=3000)
    args = parser.parse_args(argv)
    dg = Path(sys.executable).parent / "dg"
    return run(
        [
            str(dg),
            "dev",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
            "--host",
            args.host,
            "--port",
            str(args.port),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
