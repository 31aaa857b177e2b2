"""Errors that name the service, the setting to look at and the reason.

Every error here says which service failed, at which address, which configuration
key (or environment variable) set what failed, and what to do about it. Secret
*values* never appear in a message: only the names of the variables that hold them
and whether those are set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

#: Prefix of the environment variables that override a configuration key.
OVERRIDE_PREFIX = "LAKEHOUSE__"

_KEY = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")

START_LOCAL_STACK = "is the service running (`make stack-start` starts the local stack)?"


def override_variable(key: str) -> str | None:
    """The ``LAKEHOUSE__SECTION__KEY`` variable that overrides a configuration key, if any."""
    if not _KEY.match(key):
        return None
    return OVERRIDE_PREFIX + "__".join(part.upper() for part in key.split("."))


def setting_reference(key: str) -> str:
    """```s3.endpoint_url`` (or LAKEHOUSE__S3__ENDPOINT_URL)`: where a user changes a setting."""
    variable = override_variable(key)
    return f"`{key}`" + (f" (or {variable})" if variable else "")


def variable_state(name: str) -> str:
    """Whether an environment variable is set, unset or empty; never its value."""
    value = os.environ.get(name)
    if value is None:
        return f"{name} is unset"
    return f"{name} is empty" if not value else f"{name} is set"


class ServiceUnreachableError(ConnectionError):
    """A configured endpoint does not answer (or cannot be used as configured).

    Raised instead of the client library's own error so that the message names the
    service, the address, the configuration key that set it and what to do. The
    subclasses below are the other ways a configured service fails before any data
    moves (refused credentials, a missing bucket); callers that skip or retry on an
    unreachable service (the Kafka arrivals sensor) treat them alike.
    """

    def __init__(
        self,
        service: str,
        address: str,
        setting: str,
        reason: str,
        fix: str = START_LOCAL_STACK,
        *,
        problem: str = "is unreachable",
        origin: str | None = None,
    ) -> None:
        self.service = service
        self.address = address
        self.setting = setting
        self.reason = reason
        self.fix = fix
        origin = origin or f"The address comes from {setting_reference(setting)}"
        super().__init__(f"{service} at {address} {problem} ({reason}). {origin}; {fix}")


class CredentialsError(ServiceUnreachableError):
    """The service refused the credentials, or there are none to send.

    ``variables`` maps each configuration key that names a secret's environment
    variable (``s3.access_key_id_env``) to the variable's name, or to None when the
    key names none. The message says which are set; values are never read into it.
    """

    def __init__(
        self,
        service: str,
        address: str,
        variables: Mapping[str, str | None],
        reason: str,
        fix: str,
        *,
        problem: str = "refused the credentials",
    ) -> None:
        self.variables = dict(variables)
        named = [f"{name} (named by `{key}`)" for key, name in variables.items() if name]
        unnamed = [f"`{key}`" for key, name in variables.items() if not name]
        parts = []
        if named:
            states = ", ".join(variable_state(name) for name in variables.values() if name)
            noun = "variable" if len(named) == 1 else "variables"
            parts.append(
                f"The credentials come from the environment {noun} {' and '.join(named)}; {states}"
            )
        if unnamed:
            verb = "names" if len(unnamed) == 1 else "name"
            parts.append(f"{' and '.join(unnamed)} {verb} no environment variable")
        super().__init__(
            service,
            address,
            ", ".join(variables),
            reason,
            fix,
            problem=problem,
            origin=". ".join(parts),
        )


class BucketNotFoundError(ServiceUnreachableError):
    """The S3 endpoint answers but the configured bucket does not exist."""

    def __init__(self, address: str, bucket: str, reason: str) -> None:
        self.bucket = bucket
        super().__init__(
            "S3",
            address,
            "storage.bucket",
            reason,
            "create the bucket or correct the setting (`make stack-start` creates it on the "
            "local stack).",
            problem=f"has no bucket {bucket!r}",
            origin=f"The bucket comes from {setting_reference('storage.bucket')}",
        )


class ReadStalledError(TimeoutError):
    """Kafka answers, but a record of the range being read does not arrive."""

    def __init__(self, topic: str, partition: int, offset: int, message: str) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(message)


class RecordsDeletedError(LookupError):
    """Kafka no longer holds records of the range being read (retention or deletion)."""

    def __init__(self, topic: str, partition: int, offset: int, last: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(
            f"Kafka no longer holds {topic}[{partition}] at offset {offset} (reading up to "
            f"{last}): retention or a deletion removed it after the range was planned. Nothing "
            "of the range was landed, and nothing was taken as landed. Re-run the partition: it "
            "plans again from what Kafka holds now; raise the topic's retention.ms if landings "
            "fall behind it."
        )
