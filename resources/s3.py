"""S3 access for the lakehouse: boto3 for object operations, fsspec for Arrow/Parquet I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from resources.errors import ServiceUnreachableError

if TYPE_CHECKING:
    import s3fs
    from mypy_boto3_s3 import S3Client


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

    def check_reachable(self) -> None:
        """Fail with :class:`ServiceUnreachableError` unless the bucket answers."""
        from botocore.exceptions import BotoCoreError, ClientError

        address = self.endpoint_url or f"AWS S3 ({self.region})"
        try:
            self.client().head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket"):
                raise ServiceUnreachableError(
                    "S3", address, "storage.bucket", f"bucket {self.bucket!r} does not exist"
                ) from None
            raise
        except BotoCoreError as exc:
            raise ServiceUnreachableError("S3", address, "s3.endpoint_url", str(exc)) from None
