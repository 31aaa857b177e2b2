"""A real single-node Apache Kafka 4.1.1 broker (KRaft, combined mode) on loopback.

Why a real broker: the lakehouse reads Kafka offsets, timestamps and watermarks, and an
in-memory fake would not behave like MSK does in production. Why not Docker or the
Kafka tarball: the only prerequisites of the local stack are Python 3.11 and JDK 17.
So the broker's jars come from Maven Central through :mod:`lakehouse_dev.jvm` (Ivy from
the pyspark wheel), and this module plays the role of ``kafka-storage.sh`` and
``kafka-server-start.sh``: it writes ``server.properties`` and a log4j2 configuration,
formats the KRaft storage once, and runs ``kafka.Kafka`` as a detached JVM.

Layout of ``data_dir`` (everything the broker owns lives there)::

    config/server.properties    regenerated at each start from the constructor arguments
    config/log4j2.properties    broker logging -> logs/server.log (rolled, 5 x 10 MB)
    config/tools-log4j2.properties  logging of the storage tool (warnings to stderr)
    cluster.id                  the KRaft cluster id, generated once
    storage/                    log.dirs: topic partitions and the KRaft metadata log
    logs/server.log             the broker's log
    logs/broker.out             the JVM's stdout/stderr (crashes before log4j starts)
    broker.pid                  pid of the running broker
    .broker.lock                serialises start/stop between processes

Lifecycle guarantees: :meth:`KafkaBroker.start` is idempotent (a second call, from any
process, finds the broker through the pid file and returns); the storage is formatted
only once, so topics and records survive stop/start; :meth:`KafkaBroker.stop` only ever
signals a process whose command line is ``kafka.Kafka`` with *this* data dir's
``server.properties``, so a stale pid file whose pid was reused cannot kill an unrelated
process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse_dev import jvm
from lakehouse_dev.kafka_config import (
    _BROKER_LOG4J2,
    _TOOLS_LOG4J2,
    _escape_property,
    _new_cluster_id,
    broker_properties,
)
from lakehouse_dev.processes import command_line, port_in_use, port_is_open, tail

__all__ = [
    "KAFKA_COORDINATES",
    "KAFKA_JAR_SET",
    "KAFKA_VERSION",
    "LOG4J_VERSION",
    "KafkaBroker",
]

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
#: log4j2 version that kafka-server 4.1.1 itself depends on (log4j-api/-core 2.24.3).
LOG4J_VERSION = "2.24.3"
#: Kafka 4.1.1 logs through slf4j-api 1.7.36, whose binding is found via
#: ``StaticLoggerBinder``: that is ``log4j-slf4j-impl`` (slf4j 1.x), not
#: ``log4j-slf4j2-impl`` (an slf4j 2.x provider, which 1.7.36 ignores, so every log line
#: would go to the NOP logger).
KAFKA_COORDINATES: tuple[str, ...] = (
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
    f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
)
#: Name of the jar set under ``<cache root>/jars/``.
KAFKA_JAR_SET = f"kafka-{KAFKA_VERSION}"

_MAIN_CLASS = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"
_NODE_ID = 1
_HEAP_RE = re.compile(r"^\d+[kKmMgG]?$")
_LOG_TAIL_LINES = 60


class KafkaBroker:
    """A single-node Kafka 4.1.1 broker+controller (KRaft) owning ``data_dir``.

    The object is a handle, not the process: any number of handles (in any number of
    processes) for the same ``data_dir`` find the same broker through its pid file.

    Args:
        data_dir: directory for config, storage, logs and pid file (created if needed).
        port: PLAINTEXT listener for clients (``bootstrap_servers``).
        controller_port: KRaft CONTROLLER listener.
        host: loopback address to bind and advertise.
        heap: JVM ``-Xmx``; 512m is plenty for dev traffic and leaves room for Spark.
        extra_properties: ``server.properties`` overrides (e.g. retention), applied last.
    """

    def __init__(
        self,
        data_dir: Path | str,
        port: int = 19092,
        controller_port: int = 19093,
        host: str = "127.0.0.1",
        heap: str = "512m",
        *,
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        if port == controller_port:
            raise ValueError("port and controller_port must differ")
        if not _HEAP_RE.match(heap):
            raise ValueError(f"invalid heap size {heap!r}: expected e.g. '512m' or '1g'")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.controller_port = controller_port
        self.host = host
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"KafkaBroker(data_dir={str(self.data_dir)!r}, bootstrap={self.bootstrap_servers!r})"

    # ----------------------------------------------------------------- paths and config

    @property
    def bootstrap_servers(self) -> str:
        """The ``bootstrap.servers`` value for clients, e.g. ``"127.0.0.1:19092"``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """The generated ``server.properties`` (its path identifies our JVM process)."""
        return self.data_dir / "config" / "server.properties"

    @property
    def storage_dir(self) -> Path:
        """``log.dirs``: partitions and the KRaft metadata log."""
        return self.data_dir / "storage"

    @property
    def logs_dir(self) -> Path:
        """Broker logs: ``server.log`` (log4j2) and ``broker.out`` (JVM stdout/stderr)."""
        return self.data_dir / "logs"

    @property
    def pid_file(self) -> Path:
        """File holding the pid of the running broker."""
        return self.data_dir / "broker.pid"

    def server_properties(self) -> dict[str, str]:
        """Return the broker configuration written to ``server.properties``
        (:func:`lakehouse_dev.kafka_config.broker_properties`)."""
        return broker_properties(
            host=self.host,
            port=self.port,
            controller_port=self.controller_port,
            storage_dir=self.storage_dir,
            node_id=_NODE_ID,
            extra=self.extra_properties,
        )

    def _write_config(self) -> None:
        """Write ``server.properties`` and the log4j2 configurations."""
        config_dir = self.config_path.parent
        config_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        lines = ["# Generated by lakehouse_dev.kafka_broker at each start; edits are lost."]
        lines += [
            f"{key}={_escape_property(value)}" for key, value in self.server_properties().items()
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        logs = _escape_property(str(self.logs_dir))
        (config_dir / "log4j2.properties").write_text(
            _BROKER_LOG4J2.format(logs=logs), encoding="utf-8"
        )
        (config_dir / "tools-log4j2.properties").write_text(_TOOLS_LOG4J2, encoding="utf-8")

    def _jvm_options(self, log4j2_config: Path) -> list[str]:
        """JVM flags: bounded heap, G1 tuned for short pauses, crash files in logs/."""
        return [
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:MaxDirectMemorySize=256m",
            "-XX:+ExitOnOutOfMemoryError",
            f"-XX:ErrorFile={self.logs_dir}/hs_err_pid%p.log",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j2_config}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]

    # ------------------------------------------------------------------ process lookup

    def _read_pid(self) -> int | None:
        """Return the pid recorded in the pid file, or None."""
        try:
            return int(self.pid_file.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None

    def _write_pid(self, pid: int) -> None:
        """Record ``pid`` atomically (a reader never sees a half-written number)."""
        tmp = self.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n", encoding="utf-8")
        os.replace(tmp, self.pid_file)

    def _is_our_broker(self, pid: int) -> bool:
        """Tell whether ``pid`` is a live ``kafka.Kafka`` JVM running our server.properties.

        This is the guard against pid reuse: only such a process is ever signalled. A
        process this handle launched and has not reaped counts without looking at its
        command line: its pid cannot have been reused, and for a moment after ``fork``
        its command line is still Python's (``exec`` of java has not happened yet).
        """
        self._reap()
        if self._proc is not None and self._proc.pid == pid:
            return True
        cmdline = command_line(pid)
        if not cmdline:
            return False
        return f" {_MAIN_CLASS} " in f" {cmdline} " and str(self.config_path) in cmdline

    def _reap(self) -> None:
        """Collect the exit status of a broker this handle launched, so it is no zombie."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _running_pid(self) -> int | None:
        """Return the pid of our live broker according to the pid file, or None."""
        pid = self._read_pid()
        if pid is not None and self._is_our_broker(pid):
            return pid
        return None

    @property
    def pid(self) -> int | None:
        """Pid of the running broker, or None."""
        return self._running_pid()

    def is_running(self) -> bool:
        """Tell whether this data dir's broker process is alive (it may still be starting)."""
        return self._running_pid() is not None

    # ------------------------------------------------------------------------- clients

    def _admin(self) -> AdminClient:
        """An AdminClient on the bootstrap address; librdkafka logs go to Python logging.

        Without ``logger``, librdkafka prints every refused connection to stderr.
        """
        return AdminClient(
            {"bootstrap.servers": self.bootstrap_servers},
            logger=logging.getLogger(f"{__name__}.librdkafka"),
        )

    @staticmethod
    def _answers(admin: AdminClient, timeout: float) -> bool:
        """Tell whether a metadata request succeeds and lists at least one broker."""
        try:
            metadata = admin.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    # ----------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 90) -> None:
        """Start the broker if needed and return once it answers clients.

        Idempotent: if the pid file names our live broker, wait for it to answer (it may
        have been started a moment ago by another process) and return. Otherwise check
        the ports are free, resolve the jars (the first time, ~1 min of downloads, not
        counted in ``timeout``), write the config, format the storage if it never was,
        and launch the JVM detached from this process (it survives our exit and Ctrl-C).

        Args:
            timeout: seconds to wait for the launched broker to answer.

        Raises:
            RuntimeError: when a port is taken by another process, Java is missing, the
                broker exits early or does not answer in time (with its log's tail).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with jvm.file_lock(self.data_dir / ".broker.lock"):
            pid = self._running_pid()
            if pid is not None:
                self._wait_ready(pid, time.monotonic() + timeout, launched=False)
                return
            self.pid_file.unlink(missing_ok=True)
            for port in (self.port, self.controller_port):
                if port_in_use(self.host, port):
                    raise RuntimeError(
                        f"cannot start Kafka: port {port} on {self.host} is already in use "
                        f"by another process (not the broker of {self.data_dir}); stop that "
                        "process or configure other ports"
                    )
            java = jvm.require_java()
            jars = jvm.resolve_jars(KAFKA_JAR_SET, KAFKA_COORDINATES)
            self._write_config()
            self._format_storage(java, jars)
            started = time.monotonic()
            pid = self._launch(java, jars)
            try:
                self._wait_ready(pid, started + timeout, launched=True)
            except BaseException:
                # Never leave a half-started JVM behind a failed start.
                self._terminate(pid, grace=10)
                self.pid_file.unlink(missing_ok=True)
                raise
            log.info(
                "Kafka %s broker ready on %s (pid %d, %.1f s)",
                KAFKA_VERSION,
                self.bootstrap_servers,
                pid,
                time.monotonic() - started,
            )

    def _format_storage(self, java: str, jars: Sequence[Path]) -> None:
        """Format the KRaft storage the first time only, so data survives stop/start.

        The cluster id is generated once and kept in ``data_dir/cluster.id`` (a storage
        dir formatted with another id would not match its metadata log); a storage dir
        that already has ``meta.properties`` is never touched, and ``--ignore-formatted``
        makes a race with a concurrent format harmless.
        """
        if (self.storage_dir / "meta.properties").exists():
            return
        id_file = self.data_dir / "cluster.id"
        if id_file.exists():
            cluster_id = id_file.read_text(encoding="utf-8").strip()
        else:
            cluster_id = _new_cluster_id()
            id_file.write_text(cluster_id + "\n", encoding="utf-8")
        command = [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.config_path.parent / 'tools-log4j2.properties'}",
            "-cp",
            jvm.classpath(jars),
            _STORAGE_TOOL,
            "format",
            "--config",
            str(self.config_path),
            f"--cluster-id={cluster_id}",
            "--ignore-formatted",
        ]
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0 or not (self.storage_dir / "meta.properties").exists():
            output = "\n".join((proc.stdout + proc.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise RuntimeError(
                f"formatting Kafka storage {self.storage_dir} failed "
                f"(exit code {proc.returncode}):\n{output}"
            )
        log.info("formatted Kafka storage %s (cluster id %s)", self.storage_dir, cluster_id)

    def _launch(self, java: str, jars: Sequence[Path]) -> int:
        """Start ``kafka.Kafka`` detached, record its pid and return it.

        ``start_new_session`` puts the JVM in its own session so a Ctrl-C or the end of
        the launching process (a test run, ``dg dev``) does not take it down.
        """
        command = [
            java,
            *self._jvm_options(self.config_path.parent / "log4j2.properties"),
            "-cp",
            jvm.classpath(jars),
            _MAIN_CLASS,
            str(self.config_path),
        ]
        with (self.logs_dir / "broker.out").open("ab") as out:
            out.write(f"\n=== starting Kafka {KAFKA_VERSION} at {time.ctime()} ===\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self._write_pid(self._proc.pid)
        return self._proc.pid

    def _wait_ready(self, pid: int, deadline: float, *, launched: bool) -> None:
        """Poll until the broker answers; fail fast if its process exits."""
        admin: AdminClient | None = None
        while True:
            if self._proc is not None and self._proc.pid == pid and self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(
                    f"Kafka broker exited with code {code} during startup.\n{self.log_tail()}"
                )
            if not self._is_our_broker(pid):
                raise RuntimeError(
                    f"Kafka broker (pid {pid}) exited during startup.\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if port_is_open(self.host, self.port):
                admin = admin or self._admin()
                if self._answers(admin, max(0.5, min(5.0, remaining))):
                    return
            if time.monotonic() >= deadline:
                what = "started" if launched else "found running"
                raise RuntimeError(
                    f"Kafka broker (pid {pid}, {what}) did not answer on "
                    f"{self.bootstrap_servers} in time.\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker: SIGTERM (controlled shutdown), then SIGKILL after ``timeout``.

        Idempotent. Only a process verified to be this data dir's broker is signalled; a
        stale pid file is just removed.
        """
        with jvm.file_lock(self.data_dir / ".broker.lock"):
            pid = self._running_pid()
            if pid is not None:
                self._terminate(pid, grace=timeout)
                log.info("Kafka broker (pid %d) stopped", pid)
            self.pid_file.unlink(missing_ok=True)

    def _terminate(self, pid: int, grace: float) -> None:
        """SIGTERM ``pid``, wait ``grace`` seconds, then SIGKILL; raise if it survives."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if not self._is_our_broker(pid):
                return
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            if self._wait_exit(pid, wait):
                return
            if sig == signal.SIGTERM:
                log.warning("Kafka broker (pid %d) ignored SIGTERM for %.0f s; killing", pid, grace)
        raise RuntimeError(f"Kafka broker (pid {pid}) survived SIGKILL")

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        """Wait until ``pid`` is no longer our broker; True if it exited in time."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.pid != pid:
                # Launched by another handle in this process? Reap it if it is our child.
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            if not self._is_our_broker(pid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the end of ``server.log`` and ``broker.out`` (for error messages)."""
        parts = []
        for name in ("server.log", "broker.out"):
            text = tail(self.logs_dir / name, lines)
            if text:
                parts.append(f"--- {self.logs_dir / name} (last {lines} lines) ---\n{text}")
        return "\n".join(parts) or f"(no broker logs in {self.logs_dir})"

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -------------------------------------------------------------------------- topics

    def create_topics(
        self,
        topics: Mapping[str, int],
        *,
        config: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> None:
        """Create topics (name -> partition count) that do not exist yet.

        Idempotent: existing topics are left as they are (a different partition count
        is only logged, since shrinking is impossible and growing reorders keys). Returns
        once every topic has a leader for every partition, so a producer that starts
        right after never sees ``UNKNOWN_TOPIC_OR_PART``.

        Args:
            topics: topic name -> number of partitions (>= 1).
            config: topic configs for newly created topics (e.g. ``retention.ms``).
            timeout: seconds for the whole operation.
        """
        for name, partitions in topics.items():
            if partitions < 1:
                raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
        if not topics:
            return
        deadline = time.monotonic() + timeout
        admin = self._admin()
        existing = admin.list_topics(timeout=timeout).topics
        for name, partitions in topics.items():
            if name in existing and len(existing[name].partitions) != partitions:
                log.warning(
                    "topic %s exists with %d partitions (asked for %d); leaving it as is",
                    name,
                    len(existing[name].partitions),
                    partitions,
                )
        new = [
            NewTopic(
                name, num_partitions=partitions, replication_factor=1, config=dict(config or {})
            )
            for name, partitions in topics.items()
            if name not in existing
        ]
        if new:
            futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
            for name, future in futures.items():
                try:
                    future.result()
                except KafkaException as exc:
                    error = exc.args[0]
                    if (
                        isinstance(error, KafkaError)
                        and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                    ):
                        continue  # created concurrently by someone else: fine
                    raise RuntimeError(f"could not create Kafka topic {name!r}: {error}") from exc
        self._wait_for_leaders(admin, list(topics), deadline)

    @staticmethod
    def _wait_for_leaders(admin: AdminClient, names: Sequence[str], deadline: float) -> None:
        """Wait until metadata shows every partition of ``names`` with a leader."""
        while True:
            metadata = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
            missing = [
                name
                for name in names
                if name not in metadata.topics
                or metadata.topics[name].error is not None
                or not metadata.topics[name].partitions
                or any(p.leader < 0 for p in metadata.topics[name].partitions.values())
            ]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Kafka topics without leaders after timeout: {missing}")
            time.sleep(0.1)
