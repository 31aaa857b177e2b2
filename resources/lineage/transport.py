"""Where OpenLineage events go, from the ``lineage`` section, for both producers.

Dagster's events (the ``openlineage`` sensor, openlineage-python) and Spark's (the
openlineage-spark listener, a JVM jar) use the same transport: JSON lines under
``lineage_dir`` (one file per producer, so two processes never interleave a line),
an HTTP receiver such as Marquez, or the log. The API key of an HTTP receiver is read
from the variable ``lineage.api_key_env`` names, when a client is built; it never
reaches a command line (:func:`resources.spark.conf.is_secret` withholds it from the
JVM's) nor the displayed configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

from openlineage.client import OpenLineageClient
from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.transport.transport import Transport

from resources.settings import LakehouseSettings

#: The openlineage-spark listener for Spark 3.5 / Scala 2.12 (a shaded jar with no
#: dependencies), resolved from Maven Central with Spark's other packages. 1.53.0 is
#: the newest that Maven Central serves for Scala 2.12 here.
OPENLINEAGE_SPARK_VERSION = "1.53.0"
OPENLINEAGE_SPARK = f"io.openlineage:openlineage-spark_2.12:{OPENLINEAGE_SPARK_VERSION}"
OPENLINEAGE_SPARK_LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"

#: File names of the file transport, one per producer.
DAGSTER_EVENTS_FILE = "dagster.jsonl"
SPARK_EVENTS_FILE = "spark.jsonl"


#: urllib3 retry settings that retry nothing (openlineage-python merges them over its own).
_NO_RETRY = {
    "total": 0,
    "connect": 0,
    "read": 0,
    "backoff_factor": 0,
    "status_forcelist": [],
}


class LineageConfigError(ValueError):
    """The ``lineage`` section cannot deliver events; the message names the key to set."""


def lineage_problem(settings: LakehouseSettings) -> str | None:
    """Why the configured transport cannot work (a missing URL), or None when it can."""
    lineage = settings.lineage
    if lineage.enabled and lineage.transport == "http" and not lineage.url:
        return (
            f"lineage.transport is http but lineage.url is not set (environment "
            f"{settings.environment!r}): set it in the file or with LAKEHOUSE__LINEAGE__URL"
        )
    return None


def _api_key(settings: LakehouseSettings) -> str | None:
    name = settings.lineage.api_key_env
    return os.environ.get(name) or None if name else None


def lineage_transport(settings: LakehouseSettings) -> Transport:
    """The openlineage-python transport of the Dagster side.

    Raises:
        LineageConfigError: the HTTP transport has no URL.
    """
    problem = lineage_problem(settings)
    if problem is not None:
        raise LineageConfigError(problem)
    lineage = settings.lineage
    if lineage.transport == "file":
        directory = settings.lineage_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DAGSTER_EVENTS_FILE
        return FileTransport(FileConfig(log_file_path=str(path), append=True))
    if lineage.transport == "console":
        return ConsoleTransport(ConsoleConfig())
    params: dict[str, object] = {
        "url": lineage.url,
        "endpoint": lineage.endpoint,
        "timeout": lineage.timeout_seconds,
        # No retries, as dagster-openlineage's own client: a tick must stay short when
        # the receiver is down; an event that fails is logged and dropped.
        "retry": dict(_NO_RETRY),
    }
    key = _api_key(settings)
    if key is not None:
        params["auth"] = {"type": "api_key", "apiKey": key}
    return HttpTransport(HttpConfig.from_dict(params))


def lineage_client(settings: LakehouseSettings) -> OpenLineageClient:
    """An OpenLineage client on the configured transport (see :func:`lineage_transport`)."""
    return OpenLineageClient(transport=lineage_transport(settings))


def spark_listener_conf(settings: LakehouseSettings) -> dict[str, str]:
    """The ``spark.*`` settings that attach the openlineage-spark listener, or ``{}``.

    Empty when lineage or the listener is off, or the transport cannot work (the
    sensor reports why). Holds no credential: the API key of an HTTP receiver joins
    at session start (:func:`spark_listener_secrets`).
    """
    lineage = settings.lineage
    if not (lineage.enabled and lineage.spark_listener) or lineage_problem(settings):
        return {}
    conf = {
        "spark.extraListeners": OPENLINEAGE_SPARK_LISTENER,
        f"{_SPARK_PREFIX}.namespace": lineage.namespace,
        f"{_SPARK_PREFIX}.transport.type": lineage.transport,
    }
    if lineage.transport == "file":
        directory = settings.lineage_dir
        # The listener appends to the file but does not create its directory.
        directory.mkdir(parents=True, exist_ok=True)
        conf[f"{_SPARK_PREFIX}.transport.location"] = str(Path(directory) / SPARK_EVENTS_FILE)
    elif lineage.transport == "http":
        conf[f"{_SPARK_PREFIX}.transport.url"] = str(lineage.url)
        conf[f"{_SPARK_PREFIX}.transport.endpoint"] = "/" + lineage.endpoint.lstrip("/")
        conf[f"{_SPARK_PREFIX}.transport.timeoutInMillis"] = str(
            int(lineage.timeout_seconds * 1000)
        )
    return conf


def spark_listener_secrets(api_key_env: str | None) -> dict[str, str]:
    """The listener's API key settings, read from the variable ``api_key_env`` names.

    A credential like the S3 keys: :func:`resources.spark.conf.is_secret` keeps it off the
    JVM's command line, and the JVM gets it before the SparkContext (and the listener)
    starts.
    """
    key = os.environ.get(api_key_env) if api_key_env else None
    if not key:
        return {}
    return {
        f"{_SPARK_PREFIX}.transport.auth.type": "api_key",
        f"{_SPARK_PREFIX}.transport.auth.apiKey": key,
    }


_SPARK_PREFIX = "spark.openlineage"
