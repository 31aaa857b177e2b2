"""A warm Spark driver that the processes of one machine share (local environments).

Every Dagster run is a process of its own, and with Spark in local mode each one
would start a JVM and pay for its cold start: the session, the S3A and Iceberg
initialisation, class loading and a cold JIT. That is about 35 s of a small run.
With ``spark.shared_driver`` on, the first process that needs Spark starts a
*driver host* instead: a small Python process that owns one JVM with a SparkContext
on the lakehouse's configuration. It publishes the JVM's Py4J port and secret in a
file only its user can read. Later processes attach to that JVM (the way PySpark's
own ``PYSPARK_GATEWAY_PORT`` start-up does) and work in a SparkSession of their own:
their own SQL configuration, temporary views and catalog instances, with the JVM's
warm code and executors shared.

The rules:

* **One host per configuration.** A host serves one Spark configuration and one
  Python interpreter; the key is a hash of both. A file lock makes sure two
  processes never start two hosts for the same key.
* **Leases.** Each attached process holds a lease, a file named by its pid. The host
  drops the leases of processes that died. When the last client died while its jobs
  were running, the host cancels the jobs. It exits after ``idle_seconds`` without a
  lease, under the same lock that attaching takes.
* **Detaching.** ``stop()`` on an attached session detaches the process and drops
  its lease. It never stops the shared SparkContext.
* **Stopping.** ``lakehouse-stack stop`` stops the hosts of its data directory
  (:func:`stop_drivers`).
* **No credential on a command line.** The host gets the configuration on a pipe
  and starts its JVM with :func:`start_session`, as a process of its own does; its
  key is a digest of the configuration, so it holds no credential in clear either.

What a client cannot get from a shared driver: JVM-wide settings of its own (the
static ``spark.*`` configuration is the host's, which is why it is part of the key).
A client killed in the middle of a write leaves that write running in the driver,
where it still commits atomically or not at all; every write mode of the Iceberg IO
manager is safe to repeat, so the run that replaces it converges on the same table.

PySpark internals this module relies on (checked against pyspark 3.5.8; the one place
besides :mod:`resources.private_apis`): ``SparkContext._gateway``, ``_jvm``, ``_lock``
and ``_active_spark_context`` to create or attach a context on a given gateway,
``SparkContext._jsc`` to tell a stopped context, and a context's ``stop`` replaced on
attached sessions so that a client never stops the shared JVM. Spark Connect is the
supported way to share a driver; replacing this host with it is tracked separately.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import types
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resources.locks import file_lock
from resources.processes import pid_exists
from resources.spark.conf import launch_conf

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: How long a host waits with no client before it stops (seconds).
DEFAULT_IDLE_SECONDS = 900
#: How long attaching waits for a new host's JVM to come up (seconds).
START_TIMEOUT_SECONDS = 300.0
#: How often a host checks its leases (seconds).
_POLL_SECONDS = 2.0


class DriverError(RuntimeError):
    """A shared driver could not be started or reached."""


def driver_key(conf: Mapping[str, str]) -> str:
    """The key of the host that serves ``conf`` from this Python interpreter.

    The credentials are part of the key (a process must not borrow a JVM that holds
    other ones), and only as part of a SHA-256 digest: they never reach the disk.
    """
    material = json.dumps({"conf": sorted(conf.items()), "python": sys.executable})
    return hashlib.sha256(material.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class _Paths:
    directory: Path
    key: str

    @property
    def info(self) -> Path:
        return self.directory / f"{self.key}.json"

    @property
    def lock(self) -> Path:
        return self.directory / f"{self.key}.lock"

    @property
    def leases(self) -> Path:
        return self.directory / f"{self.key}.clients"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.key}.log"

    def read_info(self) -> dict[str, Any] | None:
        """The published address of a live host, or None."""
        try:
            info = json.loads(self.info.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or not pid_exists(int(info.get("pid", 0))):
            return None
        return info

    def live_leases(self) -> tuple[list[int], list[Path]]:
        """Pids of attached processes that are alive, and the lease files of dead ones."""
        alive, dead = [], []
        for lease in self.leases.glob("*") if self.leases.exists() else []:
            pid = int(lease.name) if lease.name.isdigit() else 0
            if pid and pid_exists(pid):
                alive.append(pid)
            else:
                dead.append(lease)
        return alive, dead


# Clients ----------------------------------------------------------------------------------


def attach(
    conf: Mapping[str, str],
    directory: Path,
    *,
    ivy_dir: str | None = None,
    idle_seconds: int = DEFAULT_IDLE_SECONDS,
    start_timeout: float = START_TIMEOUT_SECONDS,
) -> SparkSession:
    """A SparkSession of this process on the shared driver for ``conf``, started if needed."""
    paths = _Paths(directory, driver_key(conf))
    # Only this user lists the hosts, their keys and leases (the address file is 0600).
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with file_lock(paths.lock):
        info = paths.read_info()
        if info is None:
            info = _start_host(paths, conf, ivy_dir, idle_seconds, start_timeout)
        paths.leases.mkdir(parents=True, exist_ok=True)
        lease = paths.leases / str(os.getpid())
        lease.touch()
    atexit.register(lease.unlink, missing_ok=True)
    try:
        return _session_on(int(info["port"]), str(info["secret"]), lease)
    except Exception as exc:
        lease.unlink(missing_ok=True)
        raise DriverError(
            f"cannot attach to the shared Spark driver (pid {info['pid']}, log {paths.log}): {exc}"
        ) from exc


def _start_host(
    paths: _Paths,
    conf: Mapping[str, str],
    ivy_dir: str | None,
    idle_seconds: int,
    start_timeout: float,
) -> dict[str, Any]:
    """Start a host for ``conf`` and wait until it publishes its address (lock held)."""
    paths.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.info.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "resources.spark.driver",
        "serve",
        "--dir",
        str(paths.directory),
        "--key",
        paths.key,
        "--idle-seconds",
        str(idle_seconds),
    ]
    if ivy_dir:
        command += ["--ivy-dir", ivy_dir]
    with paths.log.open("ab") as log:
        host = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # The configuration holds credentials: it travels on the pipe, never in argv or a file.
    assert host.stdin is not None
    host.stdin.write(json.dumps(dict(conf)).encode())
    host.stdin.close()
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        info = paths.read_info()
        if info is not None and info.get("pid") == host.pid:
            return info
        if host.poll() is not None:
            raise DriverError(
                f"the shared Spark driver exited with status {host.returncode} while starting; "
                f"its log {paths.log} ends with:\n{_tail(paths.log)}"
            )
        time.sleep(0.2)
    host.kill()
    raise DriverError(
        f"the shared Spark driver did not start within {start_timeout:.0f}s; its log "
        f"{paths.log} ends with:\n{_tail(paths.log)}"
    )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _session_on(port: int, secret: str, lease: Path) -> SparkSession:
    """Wrap the host JVM's SparkContext and open a new SparkSession on it."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    active = SparkContext._active_spark_context
    if active is not None and active._jsc is not None:
        if _gateway_port(active._gateway) != port:
            raise DriverError("this process already runs a SparkContext of another driver")
        # A second resource of the same run (or test) gets the process's session, as
        # SparkSession.builder.getOrCreate() does without a shared driver.
        return SparkSession.builder.getOrCreate()
    with SparkContext._lock:
        previous = SparkContext._gateway
        if previous is not None and _gateway_port(previous) != port:
            # A gateway of an earlier, stopped host: start over on the new one.
            previous.shutdown()
            SparkContext._gateway = None
            SparkContext._jvm = None
    gateway = SparkContext._gateway
    if gateway is None:
        with _environment({"PYSPARK_GATEWAY_PORT": str(port), "PYSPARK_GATEWAY_SECRET": secret}):
            gateway = launch_gateway()
    jvm = gateway.jvm
    scala_context = jvm.org.apache.spark.SparkContext.getOrCreate()
    java_context = jvm.org.apache.spark.api.java.JavaSparkContext.fromSparkContext(scala_context)
    context = SparkContext(gateway=gateway, jsc=java_context)
    # stop() detaches this process; the host owns the SparkContext.
    context.stop = types.MethodType(_detacher(lease), context)  # type: ignore[method-assign]
    session = jvm.org.apache.spark.sql.SparkSession(scala_context, jvm.java.util.HashMap())
    return SparkSession(context, jsparkSession=session)


def _gateway_parameters(gateway: Any) -> Any:
    """Py4J's connection parameters: ``ClientServer`` (pinned threads) or ``JavaGateway``."""
    return getattr(gateway, "java_parameters", None) or gateway.gateway_parameters


def _gateway_port(gateway: Any) -> int | None:
    return getattr(_gateway_parameters(gateway), "port", None)


def _detacher(lease: Path) -> Any:
    def detach(context: Any) -> None:
        from pyspark import SparkContext

        context._jsc = None
        if getattr(context, "_accumulatorServer", None):
            context._accumulatorServer.shutdown()
            context._accumulatorServer = None
        with SparkContext._lock:
            SparkContext._active_spark_context = None
        lease.unlink(missing_ok=True)

    return detach


# Starting a JVM ---------------------------------------------------------------------------


def start_session(conf: Mapping[str, str]) -> SparkSession:
    """This process's SparkSession on ``conf``, in a JVM whose command line holds no secret.

    ``SparkSession.builder.config(map=conf).getOrCreate()`` starts the JVM through
    ``pyspark.java_gateway.launch_gateway``, which passes every entry of the conf to
    ``spark-submit`` as ``--conf key=value``: on a command line that every user of the
    machine can read (``ps``). But spark-submit needs only a few entries (packages,
    driver memory, Java options), and PySpark's ``SparkContext`` copies its whole conf
    into the JVM's ``SparkConf`` again, over the local Py4J connection (authenticated by
    a secret), before the context starts. Everything that reads credentials is made
    from that ``SparkConf`` when the context starts or later: Hadoop's configuration
    (``spark.hadoop.fs.s3a.*`` for S3A's ``SimpleAWSCredentialsProvider``), the SQL
    configuration of every session, the shared driver's client sessions included
    (``spark.sql.catalog.<name>.s3.*`` for Iceberg's ``S3FileIO``), and the environment
    of a cluster's executors (``spark.executorEnv.*``, passed to them as environment
    variables, not arguments). So the JVM is launched with
    :func:`~resources.spark.conf.launch_conf` only, and the SparkContext is created on
    it (``SparkContext(conf=..., gateway=...)``) with the full ``conf``.

    Rejected: the credentials as environment variables of the JVM for the AWS default
    chains (they would reach every process the JVM starts, and executors would need
    them in ``spark.executorEnv.*`` all the same); a properties file for spark-submit
    (on disk while the JVM starts); setting them once the context runs (Hadoop's
    configuration only through the private ``_jsc``, the catalogs' again in every
    session, the shared driver's client sessions included).

    With a SparkContext running in the process already, its session is returned (with
    ``conf``'s runtime settings), as ``builder.getOrCreate()`` does.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    with SparkContext._lock:
        active = SparkContext._active_spark_context
        if active is None or active._jsc is None:
            # The gateway outlives a stopped SparkContext; a new one reuses its JVM.
            gateway = SparkContext._gateway
            if gateway is None:
                launch = SparkConf(loadDefaults=False).setAll(list(launch_conf(conf).items()))
                gateway = launch_gateway(launch)
            full = dict(conf)
            submitted = gateway.jvm.java.lang.System.getProperty("spark.jars")
            jars = _jar_list(submitted, conf.get("spark.jars"))
            if jars:
                full["spark.jars"] = jars
            SparkContext(conf=SparkConf().setAll(list(full.items())), gateway=gateway)
    return SparkSession.builder.config(map=dict(conf)).getOrCreate()


def _jar_list(*lists: str | None) -> str:
    """The jars of comma-separated ``lists``, each once, in order.

    spark-submit resolves ``spark.jars.packages`` (Iceberg, S3A, the AWS SDK) into local
    jars, puts them on the driver's classpath and records them, with the ``spark.jars``
    it was given, in the JVM's ``spark.jars`` system property. The SparkContext serves
    executors the jars of its own conf's ``spark.jars``, which would replace that list
    with the session's (only the UDF jar): in local mode nothing would be missing (the
    executor is the driver's JVM), on a cluster the executors would lack Iceberg and
    S3A (``ClassNotFoundException: ...S3AFileSystem``). So the context gets both.
    """
    jars: list[str] = []
    for listed in lists:
        for jar in (listed or "").split(","):
            if jar and jar not in jars:
                jars.append(jar)
    return ",".join(jars)


@contextlib.contextmanager
def retrieved_jars_checked(ivy_dir: str | None) -> Iterator[None]:
    """Start sessions on one Ivy directory one at a time, never on a truncated jar.

    Every session start resolves ``spark.jars.packages`` and copies ("retrieves") the
    jars from Ivy's cache into ``<ivy_dir>/jars``; that copy is not atomic. A process
    killed during it (a run stopped while it starts, on a fresh cache) leaves a
    truncated jar that every later start takes as already retrieved, and each of them
    then fails on the classes it lacks (``NoClassDefFoundError:
    com/amazonaws/auth/AWSCredentialsProvider`` for the AWS SDK bundle). Under an
    exclusive lock on the directory, jars that are not readable zip files are removed
    (Ivy copies them again from its cache) before the session starts; the lock, held
    until the session is up, keeps a second process from checking a jar that the first
    one is still copying. ``flock`` locks die with their process.

    A truncated copy lacks the zip's end record, the last bytes of the file, so only
    that record is read (``is_zipfile``): opening each jar's whole directory (the AWS
    SDK bundle lists over 100,000 entries) cost 2.8 s of CPU per session start.
    """
    if ivy_dir is None:
        yield
        return
    root = Path(ivy_dir)
    with file_lock(root / ".session-start.lock"):
        for jar in (root / "jars").glob("*.jar"):
            try:
                complete = zipfile.is_zipfile(jar)
            except OSError:
                complete = False
            if not complete:
                jar.unlink(missing_ok=True)
        yield


# Hosts ------------------------------------------------------------------------------------


def serve(paths: _Paths, conf: Mapping[str, str], ivy_dir: str | None, idle_seconds: int) -> int:
    """Run a host: start the JVM, publish its address, serve until idle or stopped."""
    stopping = False

    def request_stop(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    os.environ.setdefault("PYSPARK_PYTHON", conf.get("spark.pyspark.python", sys.executable))
    with retrieved_jars_checked(ivy_dir):
        session = start_session(conf)
    context = session.sparkContext
    parameters = _gateway_parameters(context._gateway)
    port, secret = parameters.port, parameters.auth_token
    published = paths.info.with_suffix(".json.tmp")
    published.write_text(json.dumps({"pid": os.getpid(), "port": port, "secret": secret}))
    published.chmod(0o600)
    published.replace(paths.info)
    print(f"shared Spark driver {paths.key} serving on 127.0.0.1:{port}", flush=True)
    idle_since = time.monotonic()
    had_clients = False
    try:
        while not stopping:
            if context._jsc is None or context._jsc.sc().isStopped():
                print("the SparkContext stopped; the host exits", flush=True)
                break
            alive, dead = paths.live_leases()
            for lease in dead:
                lease.unlink(missing_ok=True)
            if alive:
                had_clients = True
                idle_since = time.monotonic()
            elif had_clients:
                # The last client is gone: whatever it left running serves nobody.
                context.cancelAllJobs()
                had_clients = False
            if not alive and time.monotonic() - idle_since > idle_seconds:
                with file_lock(paths.lock):
                    if not paths.live_leases()[0]:
                        paths.info.unlink(missing_ok=True)
                        print(f"idle for {idle_seconds}s; the host exits", flush=True)
                        break
            time.sleep(_POLL_SECONDS)
    finally:
        with contextlib.suppress(OSError):
            info = json.loads(paths.info.read_text())
            if info.get("pid") == os.getpid():
                paths.info.unlink()
        session.stop()
    return 0


def stop_drivers(directory: Path, grace_seconds: float = 30.0) -> list[int]:
    """Stop every host whose address is published in ``directory``; their pids."""
    pids = []
    for info_path in directory.glob("*.json") if directory.exists() else []:
        info = _Paths(directory, info_path.stem).read_info()
        if info is None:
            info_path.unlink(missing_ok=True)
            continue
        pid = int(info["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        pids.append(pid)
    deadline = time.monotonic() + grace_seconds
    for pid in pids:
        while pid_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_exists(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    return pids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resources.spark.driver",
        description="Host a Spark driver that local processes share (started on demand).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="host a driver; its conf comes on stdin")
    serve_parser.add_argument("--dir", required=True, type=Path)
    serve_parser.add_argument("--key", required=True)
    serve_parser.add_argument("--idle-seconds", type=int, default=DEFAULT_IDLE_SECONDS)
    serve_parser.add_argument("--ivy-dir", default=None)
    stop_parser = commands.add_parser("stop", help="stop the hosts of a directory")
    stop_parser.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "stop":
        print(f"stopped {len(stop_drivers(args.dir))} shared Spark driver(s)")
        return 0
    conf = json.loads(sys.stdin.read())
    return serve(_Paths(args.dir, args.key), conf, args.ivy_dir, args.idle_seconds)


if __name__ == "__main__":
    sys.exit(main())
