"""A local S3 API server: moto's standalone server on loopback, with its data kept across restarts.

moto keeps objects in memory only. This wrapper restores the objects saved at the
last stop and saves them again on SIGTERM, so the local stack's bronze files and
Iceberg warehouse survive ``lakehouse-stack stop`` / ``start`` as the Iceberg
catalog file does. (A SIGKILL loses what was written since the last start.)

Run as ``python -m lakehouse_dev.s3_server --port 19000 --data-dir DIR --bucket lakehouse``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse_dev.processes import ManagedProcess, port_is_open, tail, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# moto accepts any credentials; these only satisfy botocore's signer.
_LOCAL_KEY = "lakehouse-local"
_log = logging.getLogger("lakehouse.s3_server")


def _client(endpoint: str) -> S3Client:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=_LOCAL_KEY,
        aws_secret_access_key=_LOCAL_KEY,
    )


# Keys may be longer than a file name and contain anything, so objects are saved as
# numbered files with an index that maps each file back to its key.
_INDEX = "index.json"


def restore(client: S3Client, snapshot: Path) -> int:
    """Upload every object saved under ``snapshot/<bucket>/``; returns the object count."""
    count = 0
    if not snapshot.is_dir():
        return 0
    for bucket_dir in sorted(p for p in snapshot.iterdir() if p.is_dir()):
        _ensure_bucket(client, bucket_dir.name)
        index: dict[str, str] = json.loads((bucket_dir / _INDEX).read_text())
        for file_name, key in index.items():
            client.upload_file(str(bucket_dir / file_name), bucket_dir.name, key)
            count += 1
    return count


def save(client: S3Client, snapshot: Path) -> int:
    """Download every object of every bucket into ``snapshot`` (replaced atomically)."""
    staging = snapshot.with_name(snapshot.name + ".saving")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    count = 0
    for bucket in client.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        bucket_dir = staging / name
        bucket_dir.mkdir()
        index: dict[str, str] = {}
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            for item in page.get("Contents", []):
                file_name = f"{len(index):08d}"
                client.download_file(name, item["Key"], str(bucket_dir / file_name))
                index[file_name] = item["Key"]
        (bucket_dir / _INDEX).write_text(json.dumps(index))
        count += len(index)
    previous = snapshot.with_name(snapshot.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if snapshot.exists():
        snapshot.rename(previous)
    staging.rename(snapshot)
    shutil.rmtree(previous, ignore_errors=True)
    return count


def _ensure_bucket(client: S3Client, bucket: str) -> None:
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


def serve(host: str, port: int, data_dir: Path, buckets: list[str]) -> None:
    """Run until SIGTERM/SIGINT; restore the snapshot first, save it on the way out."""
    from moto.server import ThreadedMotoServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # werkzeug logs every request; that is noise in the stack's log file.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    snapshot = data_dir / "snapshot"
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{host}:{port}"
    client = _client(endpoint)
    restored = restore(client, snapshot)
    for bucket in buckets:
        _ensure_bucket(client, bucket)
    # The ready line is what `lakehouse-stack start` waits for: restore is finished.
    (data_dir / "ready").write_text(endpoint)
    _log.info("S3 server ready at %s (%d objects restored)", endpoint, restored)
    stop.wait()
    (data_dir / "ready").unlink(missing_ok=True)
    saved = save(client, snapshot)
    _log.info("saved %d objects to %s; stopping", saved, snapshot)
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    serve(args.host, args.port, args.data_dir, args.bucket)
    return 0


if __name__ == "__main__":
    sys.exit(main())


class S3Server:
    """The local S3 server process, managed like the Kafka broker: idempotent start, clean stop."""

    def __init__(
        self, data_dir: Path, port: int, buckets: list[str], host: str = "127.0.0.1"
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.buckets = buckets
        self.process = ManagedProcess(
            name="S3 server",
            pid_file=data_dir / "s3_server.pid",
            log_file=data_dir / "logs" / "s3_server.log",
            marker=f"lakehouse_dev.s3_server --port {port}",
        )

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def _ready_file(self) -> Path:
        return self.data_dir / "ready"

    def is_running(self) -> bool:
        return self.process.is_alive() and self._ready_file.exists()

    def start(self, timeout: float = 120.0) -> None:
        """Start (or find running) the server; returns once buckets and restored data are there."""
        if not self.process.is_alive():
            self._spawn()
        if not wait_until(self._ready_file.exists, timeout, process=self.process):
            self.process.stop()
            raise RuntimeError(
                f"S3 server on port {self.port} did not start; its log says:\n"
                f"{tail(self.process.log_file)}"
            )
        client = _client(self.endpoint_url)
        for bucket in self.buckets:
            _ensure_bucket(client, bucket)

    def _spawn(self) -> None:
        if port_is_open(self.host, self.port):
            raise RuntimeError(
                f"port {self.host}:{self.port} is taken by another program; the S3 server needs "
                f"it (set s3.endpoint_url or LAKEHOUSE__S3__ENDPOINT_URL to a free port)"
            )
        self._ready_file.unlink(missing_ok=True)
        # The port comes first: it is the marker that recognises this process later.
        argv = [sys.executable, "-m", "lakehouse_dev.s3_server", "--port", str(self.port)]
        argv += ["--host", self.host, "--data-dir", str(self.data_dir)]
        for bucket in self.buckets:
            argv += ["--bucket", bucket]
        self.process.spawn(argv)

    def stop(self, timeout: float = 300.0) -> bool:
        """Stop the server; it saves its objects first, which takes a while for large data."""
        return self.process.stop(timeout=timeout)
