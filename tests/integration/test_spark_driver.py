"""The shared Spark driver: processes attach to one warm JVM, in sessions of their own.

The clients are separate Python processes, as Dagster runs are: a process holds one
SparkContext, and the test process already holds the suite's. Each host here gets a
directory of its own, so the suite's shared driver is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from resources.spark.driver import DriverError, attach, driver_key, stop_drivers

pytestmark = pytest.mark.integration

#: A client: attach with the conf and directory given on stdin, run ``ACTION``, print JSON.
CLIENT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from resources.spark.driver import attach

    request = json.loads(sys.stdin.read())
    directory, conf = Path(request["dir"]), request["conf"]
    spark = attach(conf, directory, idle_seconds=request["idle"])
    jvm = spark.sparkContext._jvm
    out = {"jvm_pid": jvm.java.lang.ProcessHandle.current().pid()}
    ACTION
    print(json.dumps(out), flush=True)
    """
)


def run_client(
    conf: dict[str, str], directory: Path, action: str, idle: int = 600
) -> dict[str, Any]:
    code = CLIENT.replace("ACTION", textwrap.indent(textwrap.dedent(action), "").strip())
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        input=json.dumps({"dir": str(directory), "conf": conf, "idle": idle}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def host_info(directory: Path, conf: dict[str, str]) -> dict[str, Any]:
    return json.loads((directory / f"{driver_key(conf)}.json").read_text())


def wait_for(condition: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(message)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def conf(resources: Any) -> dict[str, str]:
    return resources.spark.session_conf()


def test_processes_share_one_jvm_in_sessions_of_their_own(
    conf: dict[str, str], tmp_path: Path
) -> None:
    first = run_client(
        conf,
        tmp_path,
        """
        spark.conf.set("spark.sql.shuffle.partitions", "7")
        spark.range(3).createOrReplaceTempView("first_only")
        out["count"] = spark.range(1000).selectExpr("sum(id) AS s").first()["s"]
        spark.stop()  # detaches: the host's SparkContext keeps running
        again = attach(conf, directory, idle_seconds=request["idle"])
        out["after_stop"] = again.range(5).count()
        out["same_jvm_after_stop"] = (
            again.sparkContext._jvm.java.lang.ProcessHandle.current().pid() == out["jvm_pid"]
        )
        """,
    )
    info = host_info(tmp_path, conf)
    second = run_client(
        conf,
        tmp_path,
        """
        out["shuffle_partitions"] = spark.conf.get("spark.sql.shuffle.partitions")
        out["sees_first_view"] = spark.catalog.tableExists("first_only")
        out["namespaces"] = sorted(r[0] for r in spark.sql("SHOW NAMESPACES").collect())
        """,
    )
    try:
        assert first["count"] == 499500
        assert first["after_stop"] == 5
        assert first["same_jvm_after_stop"]
        assert second["jvm_pid"] == first["jvm_pid"], "the second process started its own JVM"
        assert pid_alive(info["pid"])
        # Session state is per process; the catalog (the lakehouse's Iceberg one) is shared.
        assert second["shuffle_partitions"] == conf["spark.sql.shuffle.partitions"]
        assert second["sees_first_view"] is False
        assert {"bronze", "silver", "gold"} <= set(second["namespaces"])
        # Both clients have gone: their leases are gone too.
        assert list((tmp_path / f"{driver_key(conf)}.clients").iterdir()) == []
        assert (tmp_path / f"{driver_key(conf)}.json").stat().st_mode & 0o077 == 0
    finally:
        assert stop_drivers(tmp_path) == [info["pid"]]
    assert not pid_alive(info["pid"])
    assert not (tmp_path / f"{driver_key(conf)}.json").exists()


def test_a_killed_client_loses_its_lease_and_its_jobs_and_an_idle_host_exits(
    conf: dict[str, str], tmp_path: Path
) -> None:
    code = CLIENT.replace(
        "ACTION",
        "print(json.dumps(out), flush=True)\n"
        "spark.range(10**13).selectExpr('sum(id * id)').collect()",
    )
    client = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdin is not None
    assert client.stdout is not None
    client.stdin.write(json.dumps({"dir": str(tmp_path), "conf": conf, "idle": 5}))
    client.stdin.close()
    json.loads(client.stdout.readline())
    info = host_info(tmp_path, conf)
    leases = tmp_path / f"{driver_key(conf)}.clients"
    try:
        time.sleep(3)  # the job is running in the host
        client.send_signal(signal.SIGKILL)
        client.wait()
        wait_for(lambda: not any(leases.iterdir()), 30, "the host kept a dead client's lease")

        def observe() -> dict[str, Any]:
            return run_client(
                conf,
                tmp_path,
                """
                out["active_jobs"] = list(spark.sparkContext.statusTracker().getActiveJobsIds())
                """,
                idle=5,
            )

        observer = observe()
        assert observer["jvm_pid"] is not None
        # Cancelling a job stops its running tasks first: it ends within seconds.
        if observer["active_jobs"]:
            wait_for(lambda: observe()["active_jobs"] == [], 30, "the dead client's job still runs")
        # No client left: the host stops after its idle time and unpublishes itself.
        wait_for(lambda: not pid_alive(info["pid"]), 60, "the idle host did not exit")
        # Unpublished. (Under load, an observer that took longer to start than the idle
        # time finds no host and starts one of its own, which idles out in turn.)
        published = tmp_path / f"{driver_key(conf)}.json"
        wait_for(lambda: not published.exists(), 60, "an idle host stayed published")
    finally:
        stop_drivers(tmp_path)


def test_a_host_that_cannot_start_fails_the_attach_with_its_log(
    conf: dict[str, str], tmp_path: Path
) -> None:
    broken = {**conf, "spark.driver.memory": "lots"}
    with pytest.raises(DriverError, match="exited with status") as error:
        attach(broken, tmp_path, start_timeout=300)
    assert "lots" in str(error.value) or "heap" in str(error.value).lower()
    assert not (tmp_path / f"{driver_key(broken)}.json").exists()
