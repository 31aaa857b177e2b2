"""A DynamoDB endpoint: AWS, or the local stack's AWS API server (moto), on loopback.

The local S3 server (:mod:`lakehouse_dev.s3_server`) is moto's whole AWS server: the
same endpoint answers the DynamoDB API, so ``make dev`` needs no second service. Its
DynamoDB tables live in memory only (the server persists S3 alone): after a stack
restart an export finds its table missing, creates it and writes every row again.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field


class DynamoDbResource(dg.ConfigurableResource):
    """DynamoDB, where gold tables are exported for lookups by key (``serving.dynamodb``)."""

    endpoint_url: str | None = Field(
        default=None,
        description="DynamoDB API endpoint; None means AWS (`serving.dynamodb.endpoint_url`).",
    )
    region: str = Field(default="us-east-1", description="AWS region of the tables.")
    access_key_id: str | None = Field(
        default=None, description="Access key id (the S3 credentials' variables); None: AWS chain."
    )
    secret_access_key: str | None = Field(
        default=None, description="Secret access key; set through an environment variable."
    )

    def client(self) -> Any:
        """A boto3 DynamoDB client (standard retries: throttled batches are retried)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=5, read_timeout=60
            ),
        )

    def table(self, name: str) -> Any:
        """The boto3 ``Table`` of ``name`` (for its batch writer)."""
        import boto3

        service = boto3.resource(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )
        return service.Table(name)

    @property
    def address(self) -> str:
        return self.endpoint_url or f"AWS DynamoDB ({self.region})"
