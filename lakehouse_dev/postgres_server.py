"""A real PostgreSQL server (Debian's ``postgresql`` package) on loopback, for the serving export.

The stack runs the distribution's own binaries (``/usr/lib/postgresql/<version>/bin``:
``initdb`` once, then ``postgres`` as a detached process), never a container or a
download. Layout of ``data_dir``, everything the server owns::

    data/           the cluster (PGDATA), created by initdb once; survives stop/start
    postgres.log    the server's log (stdout and stderr)
    postgres.pid    pid of the running postmaster, whose command line names data/
    .lock           serialises start and stop between processes

The server listens on ``host:port`` only (no Unix socket, so nothing is written outside
``data_dir``) and asks every client for the superuser's password (SCRAM-SHA-256), set
by initdb from the password it is given. Stop is PostgreSQL's fast shutdown (SIGINT:
sessions are ended, the cluster is checkpointed), SIGKILL only if that hangs; a kill
leaves a cluster that PostgreSQL recovers from its WAL at the next start.

``initdb`` and ``postgres`` refuse to run as root. When the stack runs as root (CI,
containers) both run as the unprivileged ``postgres`` user that Debian's package
creates, through ``setpriv`` (util-linux), which drops the privileges and then
executes the program itself, so the pid file names the postmaster. ``data_dir`` then
belongs to that user, and every directory above it must let it pass: the stack's own
data directory is given the search bit (``o+x``, no listing) if it lacks it; any other
directory that blocks it is an error naming the directory and the fix.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse_dev.processes import ManagedProcess, port_in_use, tail, wait_until

#: Where Debian's packages put the server binaries, one directory per major version.
DEBIAN_BIN_ROOT = Path("/usr/lib/postgresql")
#: The unprivileged account the server runs as when the stack runs as root.
SERVICE_USER = "postgres"
_REQUIRED = ("initdb", "postgres")

if TYPE_CHECKING:
    import psycopg


def find_bin_dir(root: Path = DEBIAN_BIN_ROOT) -> Path:
    """The newest ``<root>/<version>/bin`` that holds initdb and postgres, else the
    directory of ``postgres`` on ``PATH``."""
    candidates = sorted(
        (p for p in root.glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
        reverse=True,
    )
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in _REQUIRED):
            return candidate
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    raise RuntimeError(
        f"PostgreSQL server binaries not found (looked in {root}/*/bin and on PATH): "
        "install Debian's postgresql package (`make postgres`, or `apt-get install postgresql`)"
    )


def _searchable_by(path: Path, uid: int, gids: set[int]) -> bool:
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in gids:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


class PostgresServer:
    """One PostgreSQL cluster under ``data_dir``, served on ``host:port``."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        password: str,
        host: str = "127.0.0.1",
        user: str = "lakehouse",
        database: str = "lakehouse",
        bin_dir: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = host
        self.user = user
        self.database = database
        self._password = password
        self._bin_dir = bin_dir
        self.process = ManagedProcess(
            name="postgres",
            pid_file=self.data_dir / "postgres.pid",
            log_file=self.data_dir / "postgres.log",
            marker=str(self.pgdata),
        )

    def __repr__(self) -> str:
        return f"PostgresServer({self.address}, data_dir={self.data_dir})"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def address(self) -> str:
        """Where clients connect, without the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    def is_running(self) -> bool:
        return self.process.is_alive()

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.process.log_file, lines)

    # --- who runs it -------------------------------------------------------------------

    @staticmethod
    def _service_account() -> pwd.struct_passwd | None:
        """The account to run as: None (ourselves) unless we are root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise RuntimeError(
                f"PostgreSQL refuses to run as root, and there is no {SERVICE_USER!r} user to "
                "run it as: install Debian's postgresql package (it creates the user) or run "
                "the stack as an unprivileged user"
            ) from None

    def _as_service(self, argv: list[str]) -> list[str]:
        account = self._service_account()
        if account is None:
            return argv
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        return [
            setpriv,
            f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}",
            "--init-groups",
            "--",
            *argv,
        ]

    def _prepare_dirs(self) -> None:
        """``data_dir`` owned by the account that runs the server, reachable by it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        account = self._service_account()
        if account is None:
            return
        uid, gid = account.pw_uid, account.pw_gid
        gids = {gid, *os.getgrouplist(account.pw_name, gid)}
        stack_dir = self.data_dir.parent
        for ancestor in reversed(self.data_dir.parents):
            if _searchable_by(ancestor, uid, gids):
                continue
            if ancestor == stack_dir:
                # Search only: the user can reach its own directory, not list the stack's.
                ancestor.chmod(stat.S_IMODE(ancestor.stat().st_mode) | stat.S_IXOTH)
                continue
            raise RuntimeError(
                f"PostgreSQL runs as user {SERVICE_USER!r} (it refuses root), which cannot "
                f"enter {ancestor} (mode {stat.S_IMODE(ancestor.stat().st_mode):o}): allow it "
                f"with `chmod o+x {ancestor}`, or set stack.data_dir to a directory it can reach"
            )
        if self.data_dir.stat().st_uid != uid:
            for path in [self.data_dir, *self.data_dir.rglob("*")]:
                if not path.is_symlink():
                    os.chown(path, uid, gid)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Initialise the cluster once, start the server if it is not running, and create
        the database (all idempotent, also between processes)."""
        with self._locked():
            if not self.is_running():
                if port_in_use(self.host, self.port):
                    raise RuntimeError(
                        f"cannot start PostgreSQL on {self.host}:{self.port}: the port is in use "
                        "by another process (set stack.postgres_port to a free port)"
                    )
                self._prepare_dirs()
                if not (self.pgdata / "PG_VERSION").is_file():
                    self._initdb()
                self._launch()
            if not wait_until(self._answers, timeout, interval=0.2, process=self.process):
                raise RuntimeError(
                    f"PostgreSQL at {self.host}:{self.port} did not accept connections within "
                    f"{timeout:.0f}s; its log ({self.process.log_file}) ends with:\n"
                    f"{self.log_tail()}"
                )
            self._ensure_database()

    def _initdb(self) -> None:
        """Create the cluster in a scratch directory and move it into place, so an
        interrupted initdb never leaves a half-made ``data/``."""
        scratch = self.data_dir / "data.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        password_file = self.data_dir / ".initdb-password"
        password_file.write_text(self._password + "\n")
        password_file.chmod(0o600)
        account = self._service_account()
        if account is not None:
            os.chown(password_file, account.pw_uid, account.pw_gid)
        try:
            argv = self._as_service(
                [
                    str(self.bin_dir / "initdb"),
                    f"--pgdata={scratch}",
                    f"--username={self.user}",
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ]
            )
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise RuntimeError(
                f"initdb of {self.pgdata} failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr).strip()[-4000:]}"
            )
        scratch.rename(self.pgdata)

    def _launch(self) -> None:
        argv = self._as_service(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.pgdata),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"port={self.port}",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=50",
                "-c",
                "TimeZone=UTC",
            ]
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        self.process.spawn(argv, env=env, cwd=self.data_dir)

    def _connect(self, database: str, timeout: float = 2.0) -> psycopg.Connection:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self._password,
            dbname=database,
            connect_timeout=max(1, int(timeout)),
            autocommit=True,
        )

    def _answers(self) -> bool:
        import psycopg

        try:
            with self._connect("postgres") as conn:
                conn.execute("select 1")
            return True
        except psycopg.OperationalError:
            return False

    def _ensure_database(self) -> None:
        from psycopg import sql

        with self._connect("postgres") as conn:
            found = conn.execute(
                "select 1 from pg_database where datname = %s", (self.database,)
            ).fetchone()
            if found is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.database)))

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT to the postmaster), SIGKILL only after ``timeout``."""
        with self._locked():
            pid = self.process.pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
                deadline = time.monotonic() + timeout
                while self.process.pid() == pid and time.monotonic() < deadline:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                    time.sleep(0.1)
            # Removes the pid file; signals only if the server is still there.
            self.process.stop(timeout=5)

    def describe(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"postgres         {self.address}  [{state}]"
