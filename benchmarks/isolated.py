"""A throwaway local stack for a benchmark: own data dir, own loopback ports, no leftovers.

Like the test harness (tests/conftest.py), the stack is configured only through the
``LAKEHOUSE__...`` overrides a user would set, so every setting derives as in
production code and a developer's running demo stack (ports 19000/19092) is never
touched. :class:`IsolatedStack` is a context manager: on exit the services are
stopped (their processes gone) and the data dir is deleted, also after an error
or Ctrl-C. After an error the services' logs (broker, S3 server) are kept first,
in a directory of their own that the error message names.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakehouse_dev.stack import LocalStack
    from resources.settings import LakehouseSettings


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process (all its threads) has used, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name "(...)": state is [0], utime [11], stime [12].
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: Ports of the developer's own stack (config/lakehouse.yaml) and the broker's controller.
RESERVED_PORTS = frozenset({19000, 19092, 19093})


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(pair: bool = False) -> int:
    """A free loopback port (with ``pair``: whose successor is free too, for the controller)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        taken = {port, port + 1} if pair else {port}
        if taken & RESERVED_PORTS or port >= 65535:
            continue
        if pair and not _bindable(port + 1):
            continue
        return port
    raise RuntimeError("no free loopback port")


def dataset_environ(base: Mapping[str, str], name: str, topic: str, start: str) -> dict[str, str]:
    """``base`` plus the overrides that declare dataset ``name`` on ``topic`` from ``start``."""
    prefix = f"LAKEHOUSE__DATASETS__{name.upper()}__"
    return {
        **base,
        f"{prefix}TOPIC": topic,
        f"{prefix}TOPIC_PARTITIONS": "3",
        f"{prefix}START_DATE": start,
    }


class IsolatedStack:
    """Kafka broker + S3 server in a temporary data dir on free ports, for one benchmark."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-bench-"))
        broker_port = free_port(pair=True)
        s3_port = free_port()
        while s3_port in (broker_port, broker_port + 1):
            s3_port = free_port()
        dagster_home = self.data_dir / "dagster_home"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").touch()
        #: The environment of every process of the benchmark (this one and the workers).
        self.environ: dict[str, str] = {
            **os.environ,
            "LAKEHOUSE_ENV": "local",
            "LAKEHOUSE__STACK__DATA_DIR": str(self.data_dir),
            "LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
            "LAKEHOUSE__S3__ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
            "DAGSTER_HOME": str(dagster_home),
            # Dagster's telemetry would write under DAGSTER_HOME and phone home.
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
        self._stack: LocalStack | None = None

    def settings(self, environ: Mapping[str, str] | None = None) -> LakehouseSettings:
        """Settings of the isolated environment (``environ`` adds dataset overrides)."""
        from resources.settings import load_settings

        return load_settings("local", environ=environ or self.environ)

    @property
    def bootstrap_servers(self) -> str:
        return self.environ["LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS"]

    def service_pids(self) -> dict[str, int]:
        """Pids of the running services (``kafka``, ``s3``), for CPU accounting."""
        pids: dict[str, int] = {}
        if self._stack is not None:
            broker = self._stack.kafka.pid
            server = self._stack.s3.process.pid()
            if broker is not None:
                pids["kafka"] = broker
            if server is not None:
                pids["s3"] = server
        return pids

    def start(self) -> None:
        from lakehouse_dev.stack import LocalStack

        self._stack = LocalStack.from_settings(self.settings())
        self._stack.start()

    def close(self) -> None:
        """Stop both services (always, also after a failed start) and delete the data dir."""
        try:
            if self._stack is None:
                from lakehouse_dev.stack import LocalStack

                self._stack = LocalStack.from_settings(self.settings())
            self._stack.stop()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> IsolatedStack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def keep_logs(self) -> Path | None:
        """Copy the services' log directories out of the data dir; where they went."""
        # os.walk skips what vanishes while it walks (Kafka deletes a dropped topic's
        # directories in the background); rglob would fail the whole error report.
        found = [
            Path(root) / "logs"
            for root, directories, _ in os.walk(self.data_dir)
            if "logs" in directories
        ]
        if not found:
            return None
        kept = Path(tempfile.mkdtemp(prefix="lakehouse-bench-logs-"))
        for directory in found:
            shutil.copytree(directory, kept / directory.relative_to(self.data_dir))
        return kept

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            # A service that died mid-benchmark says why only in its log.
            kept = self.keep_logs()
            if kept is not None:
                exc.add_note(f"service logs of the benchmark's stack kept in {kept}")
        self.close()
