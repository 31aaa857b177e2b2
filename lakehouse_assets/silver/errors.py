"""What silver's Spark and S3 failures mean, said in the project's terms.

Spark reports a failure of the object store as a ``Py4JJavaError`` whose Java
cause chain ends in ``java.net.ConnectException`` (``Connection refused (SDK
Attempt Count: 6)``), and a bronze file that a landing removed while silver read
it as ``SparkFileNotFoundException``. This module recognises both:
:func:`s3_errors_named` turns the first into
:class:`~resources.errors.ServiceUnreachableError` (the endpoint, the setting
``s3.endpoint_url`` and the fix), and :func:`vanished_bronze_file` tells
:func:`lakehouse_assets.silver.transforms.read_bronze_once` which listed file is
gone, so that it plans the days again instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resources.errors import ServiceUnreachableError

if TYPE_CHECKING:
    from resources.s3.client import S3Resource
    from resources.s3.parquet_store import ParquetStore

#: Java exceptions that mean no connection to the endpoint could be made.
CONNECT_FAILURES = frozenset(
    {
        "java.net.ConnectException",
        "java.net.NoRouteToHostException",
        "java.net.UnknownHostException",
        "com.amazonaws.thirdparty.apache.http.conn.HttpHostConnectException",
        "com.amazonaws.thirdparty.apache.http.conn.ConnectTimeoutException",
        "org.apache.http.conn.HttpHostConnectException",
        "org.apache.http.conn.ConnectTimeoutException",
    }
)
#: How the AWS SDK v1 (hadoop-aws' client) says that a request never got an answer.
SDK_CLIENT_EXCEPTION = "com.amazonaws.SdkClientException"
NO_HTTP_RESPONSE = "Unable to execute HTTP request"
#: ... which also covers a full connection pool: the endpoint answers, S3A is starved.
POOL_EXHAUSTED = "connection from pool"

#: The same, in the text of an error whose Java causes are not at hand, and the marks of
#: an S3A request that the text must also hold.
_REFUSED = ("java.net.ConnectException", "java.net.UnknownHostException", "Connection refused")
_S3_CLIENT = ("s3a://", "com.amazonaws.")

#: How Spark, the JVM and s3fs say that a file is not there (any more).
_NOT_FOUND = (
    "FileNotFoundException",
    "PATH_NOT_FOUND",
    "No such file or directory",
    "Path does not exist",
)


def java_causes(exc: BaseException) -> Iterator[tuple[str, str]]:
    """(class name, message) of the Java throwable behind a Py4J error and of its causes.

    Nothing for an error that did not come from the JVM. PySpark's own exception
    classes (``AnalysisException`` and the like) keep the Java throwable too.
    """
    # Py4JJavaError holds the throwable as `java_exception`, PySpark's exceptions as `_origin`.
    throwable: Any = getattr(exc, "java_exception", None)
    if throwable is None:
        throwable = getattr(exc, "_origin", None)
    seen = 0
    while throwable is not None and seen < 20:
        try:
            name, message = throwable.getClass().getName(), throwable.getMessage()
        except Exception:  # not a Java object after all, or the gateway is gone
            return
        yield str(name), str(message or "")
        throwable = throwable.getCause()
        seen += 1


def connection_failure(exc: BaseException) -> str | None:
    """Why no connection could be made, when ``exc`` means exactly that; else None.

    Spark's errors (``Py4JJavaError`` and PySpark's own) are recognised by their Java
    cause chain: a connect exception, or the SDK's "Unable to execute HTTP request"
    (unless for want of a pooled connection). botocore's connection errors (what the
    bronze listing raises through s3fs) are recognised by class.
    """
    from botocore.exceptions import ConnectionError as BotoConnectionError

    error: BaseException | None = exc
    for _ in range(5):
        if error is None or isinstance(error, ServiceUnreachableError):
            return None
        if isinstance(error, BotoConnectionError):
            return str(error)
        causes = list(java_causes(error))
        for name, message in causes:
            if name in CONNECT_FAILURES:
                # The HTTP client's message names the address: "Connect to h:p failed: ...".
                better = next(
                    (m for n, m in causes if n.endswith("HttpHostConnectException") and m), None
                )
                return better or f"{name.rsplit('.', 1)[-1]}: {message}".rstrip(": ")
        for name, message in causes:
            if (
                name == SDK_CLIENT_EXCEPTION
                and message.startswith(NO_HTTP_RESPONSE)
                and POOL_EXHAUSTED not in message
            ):
                return message
        text = str(error)
        if any(m in text for m in _S3_CLIENT) and (
            line := next((li for li in text.splitlines() if any(m in li for m in _REFUSED)), None)
        ):
            # A task's failure that reached the driver as text only (no Java cause).
            return line.strip()[:300]
        error = error.__cause__
    return None


def s3_unreachable(exc: BaseException, s3: S3Resource) -> ServiceUnreachableError | None:
    """The named error for an S3 connection failure behind ``exc``, or None."""
    reason = connection_failure(exc)
    if reason is None:
        return None
    address = s3.endpoint_url or f"AWS S3 ({s3.region})"
    return ServiceUnreachableError("S3", address, "s3.endpoint_url", reason)


@contextmanager
def s3_errors_named(s3: S3Resource) -> Iterator[None]:
    """Raise :class:`ServiceUnreachableError` (naming S3, the endpoint, ``s3.endpoint_url``
    and the fix) for an S3 connection failure in the block, the original chained."""
    try:
        yield
    except Exception as exc:
        named = s3_unreachable(exc, s3)
        if named is None:
            raise
        raise named from exc


@dataclass(frozen=True)
class VanishedFile:
    """A bronze file that silver listed and that was gone when it was read."""

    day: str
    path: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def vanished_bronze_file(
    exc: BaseException, store: ParquetStore, dataset: str
) -> VanishedFile | None:
    """The bronze file of ``dataset`` that ``exc`` reports missing, or None.

    Recognises Spark's ``PATH_NOT_FOUND`` (when the read is defined),
    ``SparkFileNotFoundException`` (when a task opens the file) and s3fs's
    ``FileNotFoundError`` (when a footer is read), by a not-found marker and the
    path of one of the dataset's bronze files in the error.
    """
    text = str(exc)
    text += "".join(f"\n{name}: {message}" for name, message in java_causes(exc))
    if not isinstance(exc, FileNotFoundError) and not any(m in text for m in _NOT_FOUND):
        return None
    root = store.partition_dir(dataset, "")  # <bucket>/<prefix>/<dataset>/date=
    found = re.search(
        r"(?:s3a?://)?"
        + re.escape(root)
        + r"(?P<day>\d{4}-\d{2}-\d{2})/(?P<name>[^/\s'\"\]\)]+?\.parquet)",
        text,
    )
    if found is None:
        return None
    return VanishedFile(found["day"], f"s3://{root}{found['day']}/{found['name']}")


class BronzeFileVanishedError(RuntimeError):
    """Silver could not read its bronze days at once: a landing kept replacing files."""

    def __init__(self, dataset: str, vanished: VanishedFile, attempts: int) -> None:
        self.dataset = dataset
        self.day = vanished.day
        self.path = vanished.path
        self.attempts = attempts
        super().__init__(
            f"silver {dataset}: bronze file {vanished.path} (dataset {dataset}, day "
            f"{vanished.day}) was listed, then gone before Spark read it, in each of "
            f"{attempts} attempts to read the run's bronze days: a landing of bronze "
            f"{dataset} {vanished.day} was replacing it (a replace landing writes the new "
            "files first, then removes the old ones). Nothing was written; run silver again "
            "once that landing has finished (automation does so after it)."
        )
