"""dbt inside the run's own process, so that dbt-spark reuses the run's Spark session.

dagster-dbt's :class:`~dagster_dbt.DbtCliResource` starts the ``dbt`` executable for
every invocation. With dbt-spark's ``session`` method that child process builds a
Spark session of its own: a second JVM, its Ivy resolution and a cold JIT, about
15-20 s before the first model and more on a busy machine, on top of importing dbt
(and ``dbt --version``, which dagster-dbt runs once per resource instance).

:class:`InProcessDbtResource` runs the same command line through dbt's programmatic
entry point (``dbtRunner``) on a thread of the run's process. dbt-spark's session
mode calls ``SparkSession.builder.getOrCreate()`` and so gets the session that the
run's :class:`resources.spark.resource.SparkResource` already started (silver and gold of a
run share one JVM). dbt's structured events reach dagster-dbt's own
:class:`~dagster_dbt.DbtCliInvocation` as the JSON lines the
executable would print, so selection, asset events, dbt tests as asset checks, and
errors behave exactly as with the executable.

The coupling to dagster-dbt is in :meth:`InProcessDbtResource.cli`, which mirrors
``DbtCliResource.cli`` of the pinned dagster-dbt (0.29) except for how dbt starts.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource
from packaging import version
from pydantic import Field

from resources.private_apis import (
    active_spark_context,
    dbt_cli_helpers,
    dbt_default_target_path,
    dbt_spark_statements_through,
    jvm,
)

if TYPE_CHECKING:
    import dagster as dg
    from dagster_dbt.dbt_manifest import DbtManifestParam
    from pyspark.sql import SparkSession

#: dbt-spark's session mode asks for Hive support and its profile's settings on every
#: statement; on an existing session Spark logs that static settings are ignored.
_SESSION_LOGGER = "org.apache.spark.sql.SparkSession"
PARTIAL_PARSE = "partial_parse.msgpack"

#: Only one dbt invocation runs in a process at a time: dbt keeps its flags, adapters
#: and event loggers in module globals.
_DBT_LOCK = threading.Lock()


class _Lines:
    """The ``stdout`` of :class:`InProcessDbt`: dbt's JSON log lines, as bytes, until done."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self.closed = False

    def put(self, line: bytes | None) -> None:
        self._queue.put(line)

    def __iter__(self) -> Iterator[bytes]:
        while not self.closed:
            line = self._queue.get()
            if line is None:
                self.closed = True
                return
            yield line

    def __enter__(self) -> _Lines:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.closed = True


class InProcessDbt:
    """One dbt command run by ``dbtRunner`` on a thread, shaped like the ``Popen`` that
    :class:`~dagster_dbt.DbtCliInvocation` reads.

    ``stdout`` yields the events that dbt's JSON stdout logger would print (level
    info and above, secrets from the environment scrubbed); ``returncode`` is 0 on
    success, 1 when dbt reported failures (a model error, a failing test), 2 when
    dbt itself failed (bad arguments, a project that does not parse).
    """

    def __init__(self, args: Sequence[str]) -> None:
        self.args = ["dbt", *args]
        self.returncode: int | None = None
        self.stdout = _Lines()
        self._errors = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbt-in-process", daemon=True)
        self._thread.start()

    def _event(self, message: Any) -> None:
        from dbt_common.events.functions import env_scrubber, msg_to_json

        if message.info.level == "debug":
            return
        self._errors += message.info.level == "error"
        self.stdout.put(env_scrubber(msg_to_json(message)).encode())

    def _run(self) -> None:
        from dbt.cli.main import dbtRunner

        code = 2
        try:
            with _DBT_LOCK:
                result = dbtRunner(callbacks=[self._event]).invoke(self.args[1:])
            code = 0 if result.success else (2 if result.exception is not None else 1)
            if result.exception is not None and not self._errors:
                # Usage errors are raised before dbt's events are set up; the
                # executable prints them to stderr.
                self.stdout.put(_error_line(f"dbt: {result.exception}"))
        except BaseException as exc:  # reported as dbt's own crash would be
            self.stdout.put(_error_line(f"dbt crashed: {type(exc).__name__}: {exc}"))
        finally:
            self.returncode = code
            self._done.set()
            self.stdout.put(None)

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise TimeoutError(f"`{' '.join(self.args)}` still running after {timeout}s")
        return int(self.returncode if self.returncode is not None else 2)

    def poll(self) -> int | None:
        return self.returncode if self._done.is_set() else None

    def send_signal(self, signum: int) -> None:
        """An interrupt cancels dbt's running Spark jobs, so the statement fails at once."""
        context = active_spark_context()
        if context is not None:
            context.cancelAllJobs()


def _error_line(text: str) -> bytes:
    """A dbt-shaped error event, for failures that happen outside dbt's own handling."""
    return orjson.dumps(
        {
            "info": {
                "name": "MainEncounteredError",
                "level": "error",
                "msg": text,
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                "invocation_id": "",
                "pid": os.getpid(),
                "thread": "dbt-in-process",
                "code": "Z002",
                "category": "",
                "extra": {},
            },
            "data": {"exc": text},
        }
    )


def _reuse_partial_parse(project_dir: Path, parsed: Path | None, target: Path) -> None:
    """Start from the ``partial_parse.msgpack`` of the project's parse (``parsed``, the
    ``DbtProject``'s target path; dbt's default target path without one), as
    dagster-dbt does for the CLI."""
    default = parsed if parsed is not None else dbt_default_target_path()
    source = (default if default.is_absolute() else project_dir / default) / PARTIAL_PARSE
    destination = target / PARTIAL_PARSE
    if source.exists() and not destination.exists():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, destination)


@contextmanager
def commits_carrying(spark: SparkSession, properties: Mapping[str, str]) -> Iterator[None]:
    """Every Iceberg commit of in-process dbt inside the block carries ``properties`` in
    its snapshot summary (the run id, say), as the IO manager's commits do.

    dbt-spark's SQL takes no write options; each statement runs with Iceberg's commit
    properties set on its thread (:func:`resources.iceberg.spark_writes.with_commit_properties`).
    """
    from resources.iceberg.spark_writes import with_commit_properties

    def run(statement: Callable[[], None]) -> None:
        with_commit_properties(spark, properties, statement)

    with dbt_spark_statements_through(run):
        yield


def quiet_session_warnings() -> None:
    """Silence Spark's "only runtime SQL configurations will take effect" per statement.

    dbt-spark builds its session with ``enableHiveSupport()`` and the profile's
    settings for every statement; on the run's existing session Spark logs that the
    static ones are ignored, which is expected here and would repeat hundreds of times.
    """
    context = active_spark_context()
    if context is None:
        return
    java = jvm(context)
    java.org.apache.logging.log4j.core.config.Configurator.setLevel(
        _SESSION_LOGGER, java.org.apache.logging.log4j.Level.ERROR
    )


class InProcessDbtResource(DbtCliResource):
    """The dbt resource of the gold assets: dbt runs inside the run's process.

    With ``in_process`` (the default) ``cli()`` runs dbt through ``dbtRunner`` on a
    thread and dbt-spark's session mode reuses the run's Spark session; without it
    this is dagster-dbt's ``DbtCliResource`` unchanged (a ``dbt`` child process with a
    Spark session of its own). Either way ``cli()`` returns dagster-dbt's
    ``DbtCliInvocation``, so ``.stream()``, ``.wait()`` and ``get_artifact()`` work.
    """

    in_process: bool = Field(
        default=True,
        description=(
            "Run dbt inside the run's process so that dbt-spark reuses the run's Spark "
            "session (one JVM per run); false starts the `dbt` executable per invocation."
        ),
    )

    parse_target_path: str | None = Field(
        default=None,
        description=(
            "Where the definitions' `dbt parse` for this deployment went (relative to the "
            "project): invocations start from its partial_parse.msgpack. Null: the "
            "DbtProject's target path, else dbt's default."
        ),
    )

    def cli(
        self,
        args: Sequence[str],
        *,
        raise_on_error: bool = True,
        manifest: DbtManifestParam | None = None,
        dagster_dbt_translator: DagsterDbtTranslator | None = None,
        context: dg.OpExecutionContext | dg.AssetExecutionContext | None = None,
        target_path: Path | None = None,
    ) -> DbtCliInvocation:
        if not self.in_process:
            return super().cli(
                args,
                raise_on_error=raise_on_error,
                manifest=manifest,
                dagster_dbt_translator=dagster_dbt_translator,
                context=context,
                target_path=target_path,
            )
        from dbt.version import __version__ as dbt_version

        dbt = dbt_cli_helpers()
        translator = dbt.validate_opt_translator(dagster_dbt_translator) or DagsterDbtTranslator()
        cleaned, selects, excludes = dbt.extract_runtime_selection_from_args(args)
        params = dbt.get_updated_cli_invocation_params_for_context(
            context=context,
            manifest=dbt.validate_manifest(manifest) if manifest else {},
            dagster_dbt_translator=translator,
            runtime_selects=selects,
            runtime_excludes=excludes,
        )
        project_dir = Path(
            params.dbt_project.project_dir if params.dbt_project else self.project_dir
        )
        target = target_path or self._get_unique_target_path(context=context)
        if not target.is_absolute():
            target = project_dir / target
        parsed = (
            Path(self.parse_target_path)
            if self.parse_target_path
            else (Path(params.dbt_project.target_path) if params.dbt_project else None)
        )
        _reuse_partial_parse(project_dir, parsed, target)
        # What the executable gets through environment variables, as options: the
        # environment is the whole process's, and other threads read it.
        options = [
            "--project-dir",
            str(project_dir),
            "--target-path",
            str(target),
            "--log-path",
            str(target),
            # Nothing on stdout (the events come back through the callback), the
            # debug log in the invocation's dbt.log as with the executable.
            "--log-level",
            "none",
            "--log-level-file",
            "debug",
            "--no-send-anonymous-usage-stats",
        ]
        if self.profiles_dir:
            options += ["--profiles-dir", self.profiles_dir]
        if self.profile:
            options += ["--profile", self.profile]
        if self.target:
            options += ["--target", self.target]
        if params.indirect_selection:
            options += ["--indirect-selection", params.indirect_selection]
        quiet_session_warnings()
        process = InProcessDbt(
            [*self.global_config_flags, *cleaned, *options, *params.selection_args]
        )
        return DbtCliInvocation(
            process=process,  # type: ignore[arg-type]  # the subset of Popen it reads
            manifest=params.manifest,
            dagster_dbt_translator=params.dagster_dbt_translator,
            project_dir=project_dir,
            target_path=target,
            raise_on_error=raise_on_error,
            cli_version=version.parse(dbt_version),
            project=params.dbt_project,
            context=context,
            adapter=None,
        )
