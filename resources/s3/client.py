"""S3 access for the lakehouse: boto3 for object operations, fsspec for Arrow/Parquet I/O.

Failures of the object store itself (no connection, refused or missing credentials,
a missing bucket) are raised as :class:`~resources.errors.ServiceUnreachableError`
and its subclasses, which name the endpoint, the configuration key or variable and
the fix, instead of botocore's or s3fs's own errors (:meth:`S3Resource.named_errors`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from resources.errors import (
    START_LOCAL_STACK,
    BucketNotFoundError,
    CredentialsError,
    ServiceUnreachableError,
)

if TYPE_CHECKING:
    import s3fs
    from mypy_boto3_s3 import S3Client

#: Error codes of S3 (and of AWS STS tokens) for credentials it does not accept.
REFUSED_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
    }
)
#: Error codes for credentials it accepts but that lack permission.
ACCESS_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "403"})


class S3Resource(dg.ConfigurableResource):
    """An S3 endpoint (AWS S3 or any S3 API server such as the local moto server).

    Credentials are optional: when unset, boto3's default chain applies (instance
    role, profile, environment). Wire them with ``dg.EnvVar`` so that the UI and the
    run logs show the variable's name, never the secret.
    """

    endpoint_url: str | None = Field(
        default=None, description="S3 API endpoint URL; None means AWS S3 (`s3.endpoint_url`)."
    )
    region: str = Field(default="us-east-1", description="AWS region of the bucket (`s3.region`).")
    access_key_id: str | None = Field(
        default=None, description="Access key id; set through an environment variable."
    )
    secret_access_key: str | None = Field(
        default=None, description="Secret access key; set through an environment variable."
    )
    bucket: str = Field(description="Bucket holding bronze files and the Iceberg warehouse.")
    access_key_id_env: str | None = Field(
        default="AWS_ACCESS_KEY_ID",
        description="Name of the variable holding the access key id (`s3.access_key_id_env`); "
        "errors name it, never its value.",
    )
    secret_access_key_env: str | None = Field(
        default="AWS_SECRET_ACCESS_KEY",
        description="Name of the variable holding the secret key (`s3.secret_access_key_env`); "
        "errors name it, never its value.",
    )

    def client(self) -> S3Client:
        """A boto3 S3 client for this endpoint (path-style addressing for S3 API servers)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options (for UPath, pyarrow and pandas) matching :meth:`client`."""
        options: dict[str, Any] = {"client_kwargs": {"region_name": self.region}}
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.access_key_id and self.secret_access_key:
            options["key"] = self.access_key_id
            options["secret"] = self.secret_access_key
        return options

    def filesystem(self) -> s3fs.S3FileSystem:
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options())

    @property
    def address(self) -> str:
        """The endpoint as errors name it."""
        return self.endpoint_url or f"AWS S3 ({self.region})"

    def named_error(self, exc: BaseException, doing: str) -> ServiceUnreachableError | None:
        """The named error for a failure of the object store itself, or None for any other.

        ``exc`` is botocore's error or s3fs's translation of it (a ``PermissionError``
        or ``FileNotFoundError`` whose cause is botocore's ``ClientError``); ``doing``
        says what was being done (``listing s3://bucket/prefix``). Errors that are not
        the store's (a missing object, a Kafka error in a stream being written) give
        None: the caller re-raises them unchanged.
        """
        from botocore.exceptions import (
            ClientError,
            CredentialRetrievalError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        error: BaseException | None = exc
        for _ in range(5):  # exc and the causes s3fs chains to it
            if error is None or isinstance(error, ServiceUnreachableError):
                return None
            reason = f"{doing}: {error}"
            if isinstance(error, (BotoConnectionError, HTTPClientError)):
                return ServiceUnreachableError(
                    "S3", self.address, "s3.endpoint_url", reason, self._connection_fix()
                )
            if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
                return self._credentials_error(
                    reason,
                    "set both variables, or leave both unset and configure the AWS default "
                    "credential chain (profile, instance or task role).",
                    problem="got no credentials to sign with",
                )
            if isinstance(error, CredentialRetrievalError):
                return self._credentials_error(
                    reason,
                    "set both variables, or repair the credential source named in the reason.",
                    problem="got no credentials to sign with",
                )
            if isinstance(error, ClientError):
                return self._client_error(error, reason)
            error = error.__cause__
        return None

    def _client_error(self, error: Any, reason: str) -> ServiceUnreachableError | None:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return BucketNotFoundError(self.address, self.bucket, reason)
        if code in REFUSED_CREDENTIALS:
            return self._credentials_error(
                reason,
                "set them to a key pair that this endpoint knows (when both are unset, "
                "boto3's default chain supplied the refused credentials: profile, instance "
                "or task role, or the local stack's placeholder).",
            )
        if code in ACCESS_DENIED:
            return self._credentials_error(
                reason,
                f"check that the variables hold the intended identity and that it may list, "
                f"read, write and delete objects in bucket {self.bucket!r} (s3:ListBucket, "
                "s3:GetObject, s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload).",
                problem="denied access" if code != "403" else "answered 403 Forbidden",
            )
        return None

    def _credentials_error(
        self, reason: str, fix: str, problem: str = "refused the credentials"
    ) -> CredentialsError:
        return CredentialsError(
            "S3",
            self.address,
            {
                "s3.access_key_id_env": self.access_key_id_env,
                "s3.secret_access_key_env": self.secret_access_key_env,
            },
            reason,
            fix,
            problem=problem,
        )

    def _connection_fix(self) -> str:
        if self.endpoint_url:
            return START_LOCAL_STACK
        return (
            "check the network path to AWS S3 (proxy, VPC endpoint, DNS) and `s3.region`; "
            "set `s3.endpoint_url` only for another S3 API server."
        )

    @contextmanager
    def named_errors(self, doing: str) -> Iterator[None]:
        """Re-raise failures of the object store inside the block as named errors.

        Other errors (a missing object, an error of the data being written) pass
        through unchanged.
        """
        try:
            yield
        except Exception as exc:
            named = self.named_error(exc, doing)
            if named is None:
                raise
            raise named from None

    def check_reachable(self) -> None:
        """Fail with :class:`ServiceUnreachableError` unless the bucket answers."""
        from botocore.exceptions import ClientError

        try:
            with self.named_errors(f"HEAD bucket {self.bucket!r}"):
                self.client().head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            # HEAD responses have no body: a missing bucket is a bare 404.
            if exc.response.get("Error", {}).get("Code", "") == "404":
                raise BucketNotFoundError(
                    self.address, self.bucket, f"HEAD bucket {self.bucket!r}: 404 Not Found"
                ) from None
            raise
