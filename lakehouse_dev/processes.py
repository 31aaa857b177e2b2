"""Detached local service processes tracked by pid files.

The local stack's services outlive the command that starts them, so they are
tracked by a pid file plus a marker that must appear in the process's command
line: a stale pid file whose pid the OS has since reused for something else is
never mistaken for our service, and never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port``.

    Binding with ``SO_REUSEADDR`` (as the JVM does for server sockets) succeeds despite
    TIME_WAIT leftovers of a service we just stopped, and fails only on a real listener.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def group_alive(group: int) -> bool:
    """Whether a process of group ``group`` still runs (zombies do not count).

    Reaps the group's leader if it is this process's child (a zombie leader would
    keep ``killpg(group, 0)`` succeeding). Without procfs, asks ``killpg``.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(group, os.WNOHANG)
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] not in ("Z", "X"):
            return True
    return False


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a (possibly large) log file, for error messages; '' if absent."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 256 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def command_line(pid: int) -> str | None:
    """The command line of ``pid`` joined with spaces, or None if there is no such process.

    A zombie (exited, not yet reaped) has an empty command line, so it never looks
    like a live service.
    """
    if Path("/proc/self/cmdline").exists():
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # no such process, or not ours to inspect
            return None
        return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    # No procfs (macOS): ask ps; -ww keeps it from truncating long java command lines.
    proc = subprocess.run(
        ["ps", "-ww", "-o", "command=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


@dataclass(frozen=True)
class ManagedProcess:
    """One detached service process: where its pid and log live and how to recognise it."""

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        """The pid of the live process this pid file names, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        cmdline = command_line(pid)
        return pid if cmdline and self.marker in cmdline else None

    def is_alive(self) -> bool:
        return self.pid() is not None

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Start the process in its own session (it survives the caller) and record its pid."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        # Until exec completes, /proc shows the parent's command line, not the marker.
        deadline = time.monotonic() + 10.0
        while self.pid() is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return process.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; True if a process was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self._signal(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            self._signal(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 10.0):
                raise RuntimeError(f"{self.name} (pid {pid}) did not exit after SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal(pid: int, signum: int) -> None:
        # The service leads its own session, so its whole process group goes with it.
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, signum)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() != pid:
                return True
            _reap(pid)
            time.sleep(0.1)
        return self.pid() != pid


def pids_running(marker: str) -> list[int]:
    """The processes whose command line contains ``marker`` (a data directory, a jar),
    from ``/proc`` (Linux)."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and marker in (command_line(int(entry.name)) or "")
    ]


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (else it lingers as a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
    process: ManagedProcess | None = None,
) -> bool:
    """Poll ``predicate()`` until true; stop early if ``process`` has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process is not None and not process.is_alive():
            return False
        time.sleep(interval)
    return bool(predicate())
