"""The local S3 server never loses a write it acknowledged: not on SIGTERM, not on SIGKILL.

Each test runs its own server process (``python -m lakehouse_dev.s3_server``) on a free
loopback port with its own data directory, kills it the way the test names, starts a
new one on the same directory and reads back through the S3 API.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from tests.conftest import _free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

BUCKET = "durable-test"


class _Server:
    """One S3 server process on a data directory; a new process (and port) per start."""

    def __init__(self, data_dir: Path, work_dir: Path) -> None:
        self.data_dir = data_dir
        self.work_dir = work_dir
        self.log = work_dir / "s3_server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 90.0) -> _Server:
        ready = self.data_dir / "ready"
        ready.unlink(missing_ok=True)  # a killed server leaves its ready file behind
        self.port = _free_port()
        argv = [sys.executable, "-m", "lakehouse_dev.s3_server", "--port", str(self.port)]
        argv += ["--data-dir", str(self.data_dir), "--bucket", BUCKET]
        with self.log.open("ab") as log:
            # cwd outside the repository: the module comes from the environment's sys.path.
            self.process = subprocess.Popen(
                argv, cwd=self.work_dir, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"S3 server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        return self

    def client(self, attempts: int = 3) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(
                retries={"total_max_attempts": attempts, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=16,
            ),
        )

    def signal(self, signum: int, timeout: float = 90.0) -> int:
        """Send ``signum`` now and wait for the process to end; returns its exit status."""
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def restart_after(self, signum: int) -> S3Client:
        self.signal(signum)
        return self.start().client()

    def kill_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[[], _Server]]:
    """Start a server on a fresh data directory; more calls start more (killed at the end)."""
    started: list[_Server] = []

    def _start() -> _Server:
        data_dir = tmp_path / f"s3-{len(started)}"
        data_dir.mkdir()
        started.append(_Server(data_dir, tmp_path))
        return started[-1].start()

    yield _start
    for each in started:
        each.kill_if_running()


def _body(client: S3Client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _keys(client: S3Client, bucket: str = BUCKET) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_acknowledged_put_survives_sigkill(server: Callable[[], _Server]) -> None:
    s3 = server()
    client = s3.client()
    body = os.urandom(100_000)
    key = "warehouse/db/table/metadata/00001-abc.metadata.json"
    client.put_object(Bucket=BUCKET, Key=key, Body=body)

    client = s3.restart_after(signal.SIGKILL)

    assert _body(client, key) == body


def test_acknowledged_put_survives_sigterm_sent_right_after_it(
    server: Callable[[], _Server],
) -> None:
    s3 = server()
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="metadata.json", Body=b'{"format-version": 2}')
    assert s3.signal(signal.SIGTERM) == 0  # no wait between the answer and the signal

    client = s3.start().client()

    assert _body(client, "metadata.json") == b'{"format-version": 2}'


def test_every_put_acknowledged_around_a_sigterm_survives(server: Callable[[], _Server]) -> None:
    s3 = server()
    acknowledged: list[str] = []
    lock = threading.Lock()
    give_up = time.monotonic() + 60

    def write(writer: int) -> None:
        client = s3.client(attempts=1)
        for number in range(100_000):
            key = f"writer-{writer}/{number:06d}"
            try:
                client.put_object(Bucket=BUCKET, Key=key, Body=key.encode() * 100)
            except Exception:
                return  # the server is going away: this put was not acknowledged
            with lock:
                acknowledged.append(key)
            if time.monotonic() > give_up:
                return

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    while len(acknowledged) < 40 and time.monotonic() < give_up:
        time.sleep(0.01)
    assert s3.signal(signal.SIGTERM) == 0  # while the writers are still writing
    for thread in writers:
        thread.join(90)
    assert len(acknowledged) >= 40

    client = s3.start().client()

    missing = set(acknowledged) - _keys(client)
    assert not missing, f"{len(missing)} acknowledged puts lost, e.g. {sorted(missing)[:5]}"


def test_delete_and_multi_object_delete_survive_sigkill(server: Callable[[], _Server]) -> None:
    s3 = server()
    client = s3.client()
    for name in ["kept", "deleted", "multi-1", "multi-2", "quiet-1", "quiet-2"]:
        client.put_object(Bucket=BUCKET, Key=name, Body=name.encode())
    client.delete_object(Bucket=BUCKET, Key="deleted")
    client.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": "multi-1"}, {"Key": "multi-2"}]}
    )
    client.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": "quiet-1"}, {"Key": "quiet-2"}], "Quiet": True}
    )

    client = s3.restart_after(signal.SIGKILL)

    assert _keys(client) == {"kept"}
    assert _body(client, "kept") == b"kept"


def test_completed_multipart_upload_survives_sigkill(server: Callable[[], _Server]) -> None:
    s3 = server()
    client = s3.client()
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), os.urandom(1234)]
    upload = client.create_multipart_upload(
        Bucket=BUCKET, Key="big.parquet", ContentType="application/vnd.apache.parquet"
    )
    etags = [
        client.upload_part(
            Bucket=BUCKET,
            Key="big.parquet",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=part,
        )["ETag"]
        for number, part in enumerate(parts, start=1)
    ]
    completed = client.complete_multipart_upload(
        Bucket=BUCKET,
        Key="big.parquet",
        UploadId=upload["UploadId"],
        MultipartUpload={
            "Parts": [{"ETag": etag, "PartNumber": n} for n, etag in enumerate(etags, start=1)]
        },
    )

    client = s3.restart_after(signal.SIGKILL)

    head = client.head_object(Bucket=BUCKET, Key="big.parquet")
    assert head["ETag"] == completed["ETag"]
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert _body(client, "big.parquet") == b"".join(parts)


def test_content_type_and_user_metadata_survive_a_restart(server: Callable[[], _Server]) -> None:
    s3 = server()
    client = s3.client()
    client.put_object(
        Bucket=BUCKET,
        Key="bronze/plain/date=2024-01-01/plain-events+0+0-9.parquet",
        Body=b"PAR1",
        ContentType="application/vnd.apache.parquet",
        Metadata={"run-id": "1234", "snake_case": "kept too"},
    )
    client.copy_object(
        Bucket=BUCKET,
        Key="copy",
        CopySource={
            "Bucket": BUCKET,
            "Key": "bronze/plain/date=2024-01-01/plain-events+0+0-9.parquet",
        },
        ContentType="text/plain",
        Metadata={"copied": "yes"},
        MetadataDirective="REPLACE",
    )
    before = client.head_object(Bucket=BUCKET, Key="copy")

    client = s3.restart_after(signal.SIGTERM)

    head = client.head_object(
        Bucket=BUCKET, Key="bronze/plain/date=2024-01-01/plain-events+0+0-9.parquet"
    )
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert head["Metadata"] == {"run-id": "1234", "snake_case": "kept too"}
    copy = client.head_object(Bucket=BUCKET, Key="copy")
    assert (copy["ContentType"], copy["Metadata"]) == ("text/plain", {"copied": "yes"})
    assert (copy["ETag"], copy["LastModified"]) == (before["ETag"], before["LastModified"])
    assert _body(client, "copy") == b"PAR1"


def test_overwrite_of_the_same_key_keeps_the_last_acknowledged_bytes(
    server: Callable[[], _Server],
) -> None:
    s3 = server()
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="sequential", Body=b"first version, the longer one")
    client.put_object(Bucket=BUCKET, Key="sequential", Body=b"second")

    # Several threads overwrite one key at once: whichever write the server kept last
    # in memory must also be the one on disk.
    def overwrite(writer: int) -> None:
        own = s3.client()
        for number in range(15):
            body = f"writer {writer} write {number} ".encode() * (1 + 500 * writer)
            own.put_object(Bucket=BUCKET, Key="contended", Body=body)

    threads = [threading.Thread(target=overwrite, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    served = _body(client, "contended")

    client = s3.restart_after(signal.SIGKILL)

    assert _body(client, "sequential") == b"second"
    assert _body(client, "contended") == served


def test_created_and_deleted_buckets_survive_sigkill(server: Callable[[], _Server]) -> None:
    s3 = server()
    client = s3.client()
    client.create_bucket(Bucket="created-bucket")
    client.put_object(Bucket="created-bucket", Key="k", Body=b"v")
    client.create_bucket(Bucket="deleted-bucket")
    client.delete_bucket(Bucket="deleted-bucket")

    client = s3.restart_after(signal.SIGKILL)

    names = {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}
    assert names == {BUCKET, "created-bucket"}
    assert client.get_object(Bucket="created-bucket", Key="k")["Body"].read() == b"v"


def test_virtual_host_style_put_survives_sigkill(server: Callable[[], _Server]) -> None:
    s3 = server()
    connection = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=30)
    connection.request(
        "PUT", "/virtual/key", body=b"by host name", headers={"Host": f"{BUCKET}.s3.amazonaws.com"}
    )
    assert connection.getresponse().status == 200
    connection.close()

    client = s3.restart_after(signal.SIGKILL)

    assert _body(client, "virtual/key") == b"by host name"


def test_a_snapshot_of_the_previous_format_is_imported_once(
    server: Callable[[], _Server], tmp_path: Path
) -> None:
    s3 = server()
    s3.signal(signal.SIGTERM)
    snapshot = s3.data_dir / "snapshot" / BUCKET
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "00000000").write_bytes(b"saved at the last stop")
    (snapshot / "index.json").write_text(json.dumps({"00000000": "old/object"}))

    client = s3.start().client()
    assert _body(client, "old/object") == b"saved at the last stop"
    assert not (s3.data_dir / "snapshot").exists()
    client.delete_object(Bucket=BUCKET, Key="old/object")

    client = s3.restart_after(signal.SIGKILL)

    assert _keys(client) == set()  # imported once: the delete is not undone by a re-import
