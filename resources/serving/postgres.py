"""A PostgreSQL server that gold is exported to: the local stack's, or any other (RDS, ...).

Connections use psycopg 3, with the session's time zone set to UTC (timestamps read
back compare equal to gold's) and an application name that shows in
``pg_stat_activity``. The password comes from the environment variable named by
``serving.postgres.password_env``, never from configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    import psycopg

#: The local stack's password when ``password_env`` is unset and the host is loopback:
#: the server listens on loopback only, so the value guards nothing but a typo.
LOCAL_PASSWORD = "lakehouse-local"


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL, where gold is exported as a star schema (``serving.postgres``)."""

    host: str | None = Field(
        default=None,
        description="Server host (`serving.postgres.host`); None: not configured, no connection.",
    )
    port: int = Field(default=5432, description="Server port.")
    database: str = Field(default="lakehouse", description="Database of the serving schema.")
    user: str = Field(default="lakehouse", description="Role the exports connect as.")
    password: str | None = Field(
        default=None,
        description="The role's password; set through the environment variable `password_env`.",
    )
    password_env: str | None = Field(
        default=None,
        description="Name of the variable that carries the password (named in errors only).",
    )
    sslmode: str = Field(default="prefer", description="libpq sslmode.")
    connect_timeout: int = Field(default=10, ge=1, description="Seconds to wait for a connection.")
    application_name: str = Field(
        default="lakehouse-serving", description="Shown in the server's pg_stat_activity."
    )

    @property
    def address(self) -> str:
        """Where the server is, without the password (for logs and metadata)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        """A new connection (the caller closes it, e.g. ``with resource.connect() as conn``)."""
        import psycopg

        if not self.host:
            raise ValueError(
                "serving.postgres.host is not set: set it in config/lakehouse.yaml or with "
                "LAKEHOUSE__SERVING__POSTGRES__HOST"
            )
        try:
            return psycopg.connect(
                host=self.host,
                port=self.port,
                dbname=self.database,
                user=self.user,
                password=self.password or "",
                sslmode=self.sslmode,
                connect_timeout=self.connect_timeout,
                application_name=self.application_name,
                options="-c TimeZone=UTC",
                autocommit=autocommit,
            )
        except psycopg.OperationalError as exc:
            hint = ""
            if self.password is None and self.password_env:
                hint = f" (no password: is {self.password_env} set?)"
            # psycopg's message names host and port, never the password.
            raise ConnectionError(
                f"cannot connect to PostgreSQL at {self.address}{hint}: {exc}"
            ) from exc
