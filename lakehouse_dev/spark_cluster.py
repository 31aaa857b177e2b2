"""A Spark standalone cluster on loopback: a master and N workers, started from the pyspark wheel.

The wheel has no ``sbin/`` scripts, but it has ``bin/spark-class`` and, in its
spark-core jar, ``org.apache.spark.deploy.master.Master`` and
``org.apache.spark.deploy.worker.Worker``: each daemon here is one
``spark-class <Master|Worker> ...`` process (a JVM of its own once spark-class has
exec'd java), tracked like the other services of the stack by a pid file plus a
marker in its command line (:class:`~lakehouse_dev.processes.ManagedProcess`).

* Everything binds to 127.0.0.1 (``--host``, ``SPARK_LOCAL_IP``); the web UIs and
  the JSON endpoint too. The ports come from ``stack.spark_*`` in the settings.
* State under ``<stack.data_dir>/spark/``: ``logs/`` (one log per daemon, with their
  executors' launch lines), ``work/worker-<i>/`` (``SPARK_WORKER_DIR``: each
  application's executor directories, stdout and stderr; finished applications' are
  removed after 10 minutes), ``conf/daemons.properties``.
* The daemons get a minimal environment (no ``AWS_*``, ``LAKEHOUSE__*`` or
  ``PYSPARK_*``): executors must receive what they need from the driver through
  Spark (``spark.executorEnv.*``, ``spark.jars``, ``spark.submit.pyFiles``), as on a
  real cluster.
* Ready means the master's ``/json/`` endpoint lists every worker as ALIVE.
* Stopping SIGTERMs the workers (each takes its executors' process group with it),
  then the master; pid files of workers beyond the configured count are stopped too.

Start: ``LAKEHOUSE__STACK__SPARK_CLUSTER=true lakehouse-stack start``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse_dev.jvm import require_java
from lakehouse_dev.processes import ManagedProcess, group_alive, port_in_use, tail, wait_until
from resources.processes import pid_exists
from resources.settings import LakehouseSettings

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
#: Environment variables the daemons inherit from the starting process (nothing else).
_INHERITED = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "TMPDIR")
#: Settings of both daemons (``--properties-file``).
_DAEMON_PROPERTIES = {
    # Submissions go through the RPC port only; no REST submission server.
    "spark.master.rest.enabled": "false",
    # Finished applications' executor directories (jars, pyFiles, logs) are removed.
    "spark.worker.cleanup.enabled": "true",
    "spark.worker.cleanup.interval": "120",
    "spark.worker.cleanup.appDataTtl": "600",
}


def spark_home() -> Path:
    """The pyspark package directory: ``bin/spark-class`` and ``jars/`` of the wheel."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def master_state(webui_port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict[str, Any]:
    """The master's JSON state (``/json/``: workers, cores, applications), or {} if unreachable."""
    try:
        with urllib.request.urlopen(f"http://{host}:{webui_port}/json/", timeout=timeout) as reply:
            state = json.loads(reply.read())
    except (OSError, urllib.error.URLError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (reaped if it is our child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs (macOS)
        return pid_exists(pid)
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def _wait_for_group(group: int, timeout: float) -> None:
    """Wait until process group ``group`` has no process left; SIGKILL it after ``timeout``."""
    deadline = time.monotonic() + timeout
    while group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_alive(group):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)


@dataclass(frozen=True)
class SparkCluster:
    """One standalone master and ``workers`` workers owning ``data_dir``."""

    data_dir: Path
    master_port: int = 17077
    master_webui_port: int = 18080
    worker_webui_port: int = 18081
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "1g"
    daemon_memory: str = "256m"
    host: str = "127.0.0.1"

    @classmethod
    def from_settings(cls, settings: LakehouseSettings) -> SparkCluster:
        stack = settings.stack
        return cls(
            data_dir=settings.data_dir / "spark",
            master_port=stack.spark_master_port,
            master_webui_port=stack.spark_master_webui_port,
            worker_webui_port=stack.spark_worker_webui_port,
            workers=stack.spark_workers,
            worker_cores=stack.spark_worker_cores,
            worker_memory=stack.spark_worker_memory,
            daemon_memory=stack.spark_daemon_memory,
        )

    # Addresses ------------------------------------------------------------------------

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    @property
    def master_webui_url(self) -> str:
        return f"http://{self.host}:{self.master_webui_port}"

    def worker_webui_ports(self) -> list[int]:
        return [self.worker_webui_port + i for i in range(self.workers)]

    # Processes ------------------------------------------------------------------------

    @property
    def _properties_file(self) -> Path:
        return self.data_dir / "conf" / "daemons.properties"

    def _work_dir(self, index: int) -> Path:
        return self.data_dir / "work" / f"worker-{index}"

    @property
    def master(self) -> ManagedProcess:
        return ManagedProcess(
            name="Spark master",
            pid_file=self.data_dir / "master.pid",
            log_file=self.data_dir / "logs" / "master.log",
            marker=f"{MASTER_CLASS} --properties-file {self._properties_file}",
        )

    def worker(self, index: int) -> ManagedProcess:
        return ManagedProcess(
            name=f"Spark worker {index}",
            pid_file=self.data_dir / f"worker-{index}.pid",
            log_file=self.data_dir / "logs" / f"worker-{index}.log",
            marker=f"{WORKER_CLASS} --work-dir {self._work_dir(index)}",
        )

    def _recorded_workers(self) -> list[int]:
        """Indexes of every worker pid file in the data directory (any configured count)."""
        indexes = set(range(self.workers))
        for pid_file in self.data_dir.glob("worker-*.pid") if self.data_dir.is_dir() else []:
            suffix = pid_file.stem.removeprefix("worker-")
            if suffix.isdigit():
                indexes.add(int(suffix))
        return sorted(indexes)

    def _environment(self, work_dir: Path | None = None) -> dict[str, str]:
        env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_CONF_DIR=str(self._properties_file.parent),
            SPARK_LOCAL_IP=self.host,
            SPARK_PUBLIC_DNS=self.host,
            SPARK_DAEMON_MEMORY=self.daemon_memory,
        )
        if work_dir is not None:
            env["SPARK_WORKER_DIR"] = str(work_dir)
        return env

    def _spark_class(self) -> str:
        return str(spark_home() / "bin" / "spark-class")

    # Lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Start what is not running and wait until every worker is registered (idempotent).

        Raises:
            RuntimeError: a port is taken by another program, or a daemon did not come
                up (with the end of its log).
        """
        require_java()
        self._write_properties()
        master_pid = self.master.pid()
        if master_pid is None:
            self._check_ports_free(
                [
                    (self.master_port, "stack.spark_master_port"),
                    (self.master_webui_port, "stack.spark_master_webui_port"),
                ]
            )
            master_pid = self.master.spawn(
                [
                    self._spark_class(),
                    MASTER_CLASS,
                    "--properties-file",
                    str(self._properties_file),
                    "--host",
                    self.host,
                    "--port",
                    str(self.master_port),
                    "--webui-port",
                    str(self.master_webui_port),
                ],
                env=self._environment(),
                cwd=self.data_dir,
            )
        # Not wait_until(process=...): it checks the marker in the command line, which
        # reads empty for an instant while spark-class exec's java.
        if not wait_until(
            lambda: (
                master_state(self.master_webui_port).get("status") == "ALIVE"
                or not _running(master_pid)
            ),
            timeout,
        ) or not _running(master_pid):
            self._fail(self.master, f"did not start on {self.master_url}")
        for index in self._recorded_workers():
            if index >= self.workers:
                self.worker(index).stop()  # left from a start with more workers
        for index, port in enumerate(self.worker_webui_ports()):
            worker = self.worker(index)
            if worker.is_alive():
                continue
            self._check_ports_free([(port, "stack.spark_worker_webui_port")])
            work_dir = self._work_dir(index)
            work_dir.mkdir(parents=True, exist_ok=True)
            worker.spawn(
                [
                    self._spark_class(),
                    WORKER_CLASS,
                    "--work-dir",
                    str(work_dir),
                    "--properties-file",
                    str(self._properties_file),
                    "--host",
                    self.host,
                    "--cores",
                    str(self.worker_cores),
                    "--memory",
                    self.worker_memory,
                    "--webui-port",
                    str(port),
                    self.master_url,
                ],
                env=self._environment(work_dir),
                cwd=self.data_dir,
            )
        if not wait_until(self._all_workers_alive, timeout):
            dead = [self.worker(i) for i in range(self.workers) if not self.worker(i).is_alive()]
            self._fail(
                dead[0] if dead else self.worker(0),
                f"workers did not all register with {self.master_url} within {timeout:.0f}s",
            )

    def _write_properties(self) -> None:
        self._properties_file.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Generated by lakehouse_dev.spark_cluster at each start; edits are lost."]
        lines += [f"{key}={value}" for key, value in _DAEMON_PROPERTIES.items()]
        self._properties_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _check_ports_free(self, ports: list[tuple[int, str]]) -> None:
        for port, key in ports:
            if port_in_use(self.host, port):
                raise RuntimeError(
                    f"port {self.host}:{port} is taken by another program; the local Spark "
                    f"cluster needs it (set {key} or LAKEHOUSE__STACK__{key.split('.')[1].upper()} "
                    "to a free port)"
                )

    def _fail(self, process: ManagedProcess, problem: str) -> None:
        logs = "\n".join(
            f"--- {p.log_file}\n{tail(p.log_file, 20)}"
            for p in (self.master, *(self.worker(i) for i in range(self.workers)))
            if p.log_file.exists()
        )
        self.stop()
        raise RuntimeError(f"the local Spark cluster: {process.name} {problem}\n{logs}")

    def alive_workers(self) -> list[dict[str, Any]]:
        """The master's ALIVE workers that are this cluster's (by their web UI port)."""
        ours = {f"{self.host}:{port}" for port in self.worker_webui_ports()}
        workers = master_state(self.master_webui_port).get("workers") or []
        return [
            worker
            for worker in workers
            if worker.get("state") == "ALIVE"
            and str(worker.get("webuiaddress", "")).removeprefix("http://") in ours
        ]

    def _all_workers_alive(self) -> bool:
        return len(self.alive_workers()) >= self.workers

    def stop(self, timeout: float = 30.0, executor_grace: float = 10.0) -> bool:
        """Stop every worker (and its executors), then the master; True if any was running.

        A daemon leads its own process group, and a worker's executors are in its group:
        the SIGTERM reaches them too, and stopping waits until every group is empty, not
        only until the daemons exit. An executor of a running application can take 30 s
        and more to exit on SIGTERM (Hadoop's shutdown hooks); it gets
        ``executor_grace`` seconds, then SIGKILL: executors hold nothing durable.
        """
        stopped = False
        groups = []
        for process in [*(self.worker(i) for i in self._recorded_workers()), self.master]:
            group = process.pid()
            stopped = process.stop(timeout=timeout) or stopped
            if group is not None:
                groups.append(group)
        deadline = time.monotonic() + executor_grace
        for group in groups:
            _wait_for_group(group, max(0.0, deadline - time.monotonic()))
        return stopped

    def is_running(self) -> bool:
        return self.master.is_alive()

    def describe(self) -> list[str]:
        """Lines for ``lakehouse-stack status``: master URL, web UIs and workers."""
        if not self.is_running():
            return [f"spark master     {self.master_url}  [stopped]"]
        alive = self.alive_workers()
        lines = [
            f"spark master     {self.master_url}  web UI {self.master_webui_url}  [running]",
            f"spark workers    {len(alive)}/{self.workers} alive, {self.worker_cores} core(s) and "
            f"{self.worker_memory} each",
        ]
        for worker in sorted(alive, key=lambda w: str(w.get("webuiaddress"))):
            lines.append(
                f"  worker         {worker.get('host')}:{worker.get('port')}  web UI "
                f"{worker.get('webuiaddress')}  cores used {worker.get('coresused')}/"
                f"{worker.get('cores')}"
            )
        return lines
