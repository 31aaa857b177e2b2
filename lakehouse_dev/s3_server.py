"""A local S3 API server: moto's standalone server on loopback, with write-through persistence.

moto keeps objects in memory only. This server serves moto's own WSGI application
(the one ``moto.server.ThreadedMotoServer`` runs) behind a small middleware that
makes every S3 change durable *before* the client gets its answer: when a request
has changed objects or buckets in moto's in-process S3 backend (PutObject, CopyObject,
CompleteMultipartUpload, a POST form upload, DeleteObject, DeleteObjects,
CreateBucket, DeleteBucket), the middleware writes the new state of exactly those
keys to disk (temporary file, fsync, atomic rename, fsync of the directory; a
deleted key's file is removed) and only then returns moto's response. An
acknowledged (2xx) write therefore survives SIGTERM, SIGKILL and a machine crash,
and the next start restores it, straight into the backend.

Which keys a request changed is learnt from the backend itself (its ``put_object``,
``delete_object``, ``create_bucket`` and ``delete_bucket`` record the names they touch
for the request's thread), not by parsing URLs: path-style and virtual-host-style
addressing, URL encoding and quiet multi-deletes need no code of their own here.

On disk, under ``<data-dir>/objects/``: one directory per bucket with a
``bucket.json`` (account, region, creation date), and one file per object at
``<bucket>/<h[:2]>/<h>`` with ``h`` the SHA-256 of the key (keys can be longer than a
file name and contain anything). An object file is one JSON line (the key, ETag,
last-modified, metadata such as content type and user metadata, storage class,
checksum) followed by the object's bytes; a single file makes each object change
one atomic rename. What is not kept: object versions (the latest is), tags, ACLs,
bucket configurations (versioning, policies, ...), multipart uploads in progress
(S3 acknowledges an object only when its upload completes) and moto's other services.

Writes of the same key from several request threads are serialised per key, and each
sync writes the backend's state *at the time of the sync*: the last acknowledged
write wins on disk, as it does in memory. If a change cannot be written (disk full),
the client gets a 500 instead of a success it could not rely on.

A ``snapshot/`` directory of the previous format (objects saved at stop) is imported
once at start and then removed. SIGTERM/SIGINT stop the server cleanly: it stops
accepting connections, answers 503 to new requests on open connections, lets
requests in flight finish (their changes are already durable) and exits; nothing
is saved on the way out because nothing needs to be. ``POST /moto-api/reset`` is
refused: it would empty the memory behind the disk's back.

Run as ``python -m lakehouse_dev.s3_server --port 19000 --data-dir DIR --bucket lakehouse``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import inspect
import json
import logging
import os
import shutil
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse_dev.processes import ManagedProcess, port_is_open, tail, wait_until

if TYPE_CHECKING:
    from moto.s3.models import FakeBucket
    from mypy_boto3_s3 import S3Client

# moto accepts any credentials; these only satisfy botocore's signer.
_LOCAL_KEY = "lakehouse-local"
_log = logging.getLogger("lakehouse.s3_server")

_DEFAULT_REGION = "us-east-1"
_BUCKET_FILE = "bucket.json"
# Methods whose requests may change S3 state; GET/HEAD/OPTIONS pass straight through.
_MUTATING_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH"})
_IN_FLIGHT_GRACE_SECONDS = 60.0


def _client(endpoint: str) -> S3Client:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=_DEFAULT_REGION,
        aws_access_key_id=_LOCAL_KEY,
        aws_secret_access_key=_LOCAL_KEY,
    )


def _ensure_bucket(client: S3Client, bucket: str) -> None:
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


# --- durable files -------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents durably (each new entry's parent is fsynced)."""
    if path.is_dir():
        return
    _make_dirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    _fsync_dir(path.parent)


def _write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write a new version of ``path``: temporary file, fsync, rename (directory not synced)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temporary, path)


class ObjectStore:
    """The on-disk copy of the S3 data: a directory per bucket, a file per object."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def bucket_dir(self, bucket: str) -> Path:
        return self.root / bucket

    def object_path(self, bucket: str, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return self.root / bucket / digest[:2] / digest

    def write_bucket(self, bucket: str, header: dict[str, Any]) -> None:
        directory = self.bucket_dir(bucket)
        _make_dirs(directory)
        _write_atomically(directory / _BUCKET_FILE, [json.dumps(header).encode()])
        _fsync_dir(directory)

    def remove_bucket(self, bucket: str) -> None:
        directory = self.bucket_dir(bucket)
        if not directory.exists():
            return
        # One atomic rename makes the bucket gone; the contents are removed afterwards.
        doomed = self.root / f".deleted-{uuid.uuid4().hex}"
        directory.rename(doomed)
        _fsync_dir(self.root)
        shutil.rmtree(doomed, ignore_errors=True)

    def write_object(self, bucket: str, key: str, header: dict[str, Any], body: bytes) -> Path:
        """Write one object; returns the directory whose fsync makes the rename durable."""
        path = self.object_path(bucket, key)
        _make_dirs(path.parent)
        line = json.dumps(header).encode() + b"\n"  # json escapes newlines: one line
        _write_atomically(path, [line, body])
        return path.parent

    def remove_object(self, bucket: str, key: str) -> Path | None:
        """Remove one object's file; returns the directory to fsync, or None if there was none."""
        path = self.object_path(bucket, key)
        try:
            path.unlink()
        except FileNotFoundError:
            return None
        return path.parent

    def read(self) -> Iterator[tuple[str, dict[str, Any], list[tuple[dict[str, Any], bytes]]]]:
        """Yield ``(bucket, bucket header, [(object header, bytes), ...])`` for every bucket.

        Leftovers of an interrupted write (temporary files, a bucket being deleted) are
        removed: their changes were never acknowledged.
        """
        if not self.root.is_dir():
            return
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True)
                continue
            if not entry.is_dir():
                continue
            try:
                bucket_header = json.loads((entry / _BUCKET_FILE).read_text())
            except FileNotFoundError:
                bucket_header = {}
            objects = []
            for shard in sorted(p for p in entry.iterdir() if p.is_dir()):
                for path in sorted(shard.iterdir()):
                    if path.name.startswith("."):
                        path.unlink(missing_ok=True)
                        continue
                    data = path.read_bytes()
                    newline = data.find(b"\n")
                    try:
                        header = json.loads(data[:newline])
                    except ValueError:
                        _log.warning("skipping %s: not an object file of this server", path)
                        continue
                    objects.append((header, data[newline + 1 :]))
            if bucket_header or objects:
                yield entry.name, bucket_header, objects


# --- moto's backend --------------------------------------------------------------------


def _find_bucket(name: str) -> FakeBucket | None:
    """The bucket called ``name`` in whichever account's S3 backend holds it, or None."""
    from moto.s3.models import s3_backends

    owner = s3_backends.bucket_accounts.get(name)
    if owner is None:
        return None
    partition, account_id = owner
    return s3_backends[account_id][partition].buckets.get(name)


# Changes made by the request that the current thread is serving: ("bucket", name) or
# ("key", bucket, key). None outside a request (restore at start records nothing).
_changes = threading.local()
_RECORDING_MARK = "_lakehouse_records_changes"


def _record(change: tuple[str, ...]) -> None:
    recorded: set[tuple[str, ...]] | None = getattr(_changes, "current", None)
    if recorded is not None:
        recorded.add(change)


def _recording(method: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
    """Wrap a backend method so that it records the bucket (and key) names it was called with."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        finally:
            # Recorded even when the call fails part-way: a sync of an unchanged key is harmless.
            if getattr(_changes, "current", None) is not None:
                arguments = signature.bind(*args, **kwargs).arguments
                kind = "key" if len(names) == 2 else "bucket"
                _record((kind, *(str(arguments[name]) for name in names)))

    setattr(wrapper, _RECORDING_MARK, True)
    return wrapper


def install_change_recording() -> None:
    """Make moto's S3 backend record, per request thread, the buckets and keys it changes.

    Every S3 object write goes through ``put_object`` (plain puts, copies, completed
    multipart uploads, form uploads) and every delete through ``delete_object`` (single
    and multi-object deletes). Idempotent.
    """
    from moto.s3.models import S3Backend

    hooks = {
        "put_object": ("bucket_name", "key_name"),
        "delete_object": ("bucket_name", "key_name"),
        "create_bucket": ("bucket_name",),
        "delete_bucket": ("bucket_name",),
    }
    for method_name, names in hooks.items():
        method = getattr(S3Backend, method_name)
        if not getattr(method, _RECORDING_MARK, False):
            setattr(S3Backend, method_name, _recording(method, names))


class Persistence:
    """Brings the disk copy of given buckets and keys in line with moto's S3 backend."""

    _STRIPES = 256

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._bucket_lock = threading.Lock()
        self._key_locks = [threading.Lock() for _ in range(self._STRIPES)]

    def _key_lock(self, bucket: str, key: str) -> threading.Lock:
        digest = hashlib.blake2b(f"{bucket}/{key}".encode("utf-8", "surrogatepass"), digest_size=2)
        return self._key_locks[int.from_bytes(digest.digest(), "big") % self._STRIPES]

    def sync(self, changes: Iterable[tuple[str, ...]]) -> None:
        """Make the given changes durable: buckets first, then keys, then one fsync per directory."""
        ordered = sorted(changes, key=lambda change: change[0] != "bucket")
        directories: set[Path] = set()
        for change in ordered:
            if change[0] == "bucket":
                self.sync_bucket(change[1])
            else:
                directory = self.sync_key(change[1], change[2])
                if directory is not None:
                    directories.add(directory)
        for directory in directories:
            _fsync_dir(directory)

    def sync_bucket(self, name: str) -> None:
        with self._bucket_lock:
            bucket = _find_bucket(name)
            if bucket is None:
                self.store.remove_bucket(name)
            elif not (self.store.bucket_dir(name) / _BUCKET_FILE).exists():
                header = {
                    "account_id": bucket.account_id,
                    "region": bucket.region_name,
                    "creation_date": bucket.creation_date.isoformat(),
                }
                self.store.write_bucket(name, header)

    def sync_key(self, bucket_name: str, key_name: str) -> Path | None:
        """Write (or remove) one key's file as the backend has it now; returns the directory."""
        from moto.s3.models import FakeKey

        with self._key_lock(bucket_name, key_name):
            for _attempt in range(10_000):
                bucket = _find_bucket(bucket_name)
                key = bucket.keys.get(key_name) if bucket is not None else None
                if not isinstance(key, FakeKey):  # absent, or a delete marker
                    return self.store.remove_object(bucket_name, key_name)
                try:
                    body = key.value
                except (ValueError, OSError):  # a newer write replaced (closed) this version
                    continue
                if key.disposed or len(body) != key.size:
                    continue  # read while being replaced: read the newer version
                header = {
                    "key": key.name,
                    "etag": key.etag.strip('"'),
                    "last_modified": key.last_modified.isoformat(),
                    "metadata": dict(key.metadata),
                    "storage_class": key.storage_class,
                    "checksum_algorithm": key.checksum_algorithm,
                    "checksum_value": key.checksum_value,
                    "checksum_type": key.checksum_type,
                }
                return self.store.write_object(bucket_name, key_name, header, body)
        raise RuntimeError(f"s3://{bucket_name}/{key_name} kept changing while being saved")


def restore(store: ObjectStore, persistence: Persistence) -> int:
    """Load every bucket and object on disk into moto's S3 backend; returns the object count."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    count = 0
    for bucket_name, bucket_header, objects in store.read():
        region = bucket_header.get("region", _DEFAULT_REGION)
        account_id = bucket_header.get("account_id", DEFAULT_ACCOUNT_ID)
        backend = s3_backends[account_id][get_partition(region)]
        if _find_bucket(bucket_name) is None:
            bucket = backend.create_bucket(bucket_name, region)
            if "creation_date" in bucket_header:
                bucket.creation_date = datetime.datetime.fromisoformat(
                    bucket_header["creation_date"]
                )
        if not bucket_header:  # a bucket directory whose bucket.json was never written
            persistence.sync_bucket(bucket_name)
        for header, body in objects:
            key = backend.put_object(
                bucket_name,
                header["key"],
                body,
                storage=header.get("storage_class"),
                etag=header.get("etag"),
                checksum_value=header.get("checksum_value"),
                disable_notification=True,
            )
            key.set_metadata(dict(header.get("metadata", {})))
            key.last_modified = datetime.datetime.fromisoformat(header["last_modified"])
            key.checksum_algorithm = header.get("checksum_algorithm")
            key.checksum_type = header.get("checksum_type")
            count += 1
    return count


def _ensure_backend_bucket(persistence: Persistence, bucket: str) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    if _find_bucket(bucket) is None:
        s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(bucket, _DEFAULT_REGION)
    persistence.sync_bucket(bucket)


def migrate_snapshot(data_dir: Path, persistence: Persistence) -> int:
    """Import a ``snapshot/`` of the previous format (saved at stop) once, then remove it.

    That format kept numbered files with an ``index.json`` (file -> key) per bucket and
    no metadata. Each object is put into the backend and written to the store; the
    snapshot is removed only afterwards, so an interrupted migration is repeated.
    """
    from moto.s3.models import s3_backends

    snapshot = data_dir / "snapshot"
    previous = data_dir / "snapshot.old"  # a stop interrupted between its two renames
    source = snapshot if snapshot.is_dir() else previous if previous.is_dir() else None
    count = 0
    if source is not None:
        for bucket_dir in sorted(p for p in source.iterdir() if p.is_dir()):
            index_file = bucket_dir / "index.json"
            if not index_file.exists():
                continue  # the old format wrote the index last: an incomplete bucket
            _ensure_backend_bucket(persistence, bucket_dir.name)
            partition, account_id = s3_backends.bucket_accounts[bucket_dir.name]
            backend = s3_backends[account_id][partition]
            index: dict[str, str] = json.loads(index_file.read_text())
            for file_name, key in index.items():
                body = (bucket_dir / file_name).read_bytes()
                backend.put_object(bucket_dir.name, key, body, disable_notification=True)
                directory = persistence.sync_key(bucket_dir.name, key)
                if directory is not None:
                    _fsync_dir(directory)
                count += 1
        done = data_dir / f".snapshot-migrated-{uuid.uuid4().hex}"
        source.rename(done)
        _fsync_dir(data_dir)
        shutil.rmtree(done, ignore_errors=True)
        _log.info("imported %d objects from the old snapshot %s", count, source)
    for leftover in [
        snapshot,
        previous,
        data_dir / "snapshot.saving",
        *data_dir.glob(".snapshot-migrated-*"),
    ]:
        shutil.rmtree(leftover, ignore_errors=True)
    return count


# --- the WSGI middleware and the server --------------------------------------------------


def _s3_error(status: str, code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    headers = [
        ("Content-Type", "application/xml"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    return status, headers, body


class WriteThrough:
    """WSGI middleware: a request's S3 changes are on disk before its response leaves."""

    def __init__(self, app: Callable[..., Iterable[bytes]], persistence: Persistence) -> None:
        self.app = app
        self.persistence = persistence
        self._stopping = False
        self._in_flight = 0
        self._idle = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")
        if method == "POST" and path.startswith("/moto-api/reset"):
            return self._respond(
                start_response,
                _s3_error("403 Forbidden", "NotSupported", "this server keeps its data on disk"),
            )
        if method not in _MUTATING_METHODS:
            return self.app(environ, start_response)
        with self._idle:
            if self._stopping:
                refusal = _s3_error("503 Service Unavailable", "ServiceUnavailable", "stopping")
                return self._respond(start_response, refusal)
            self._in_flight += 1
        try:
            return self._respond(start_response, self._handle(environ))
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _handle(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        response: dict[str, Any] = {}
        written: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            response["status"], response["headers"] = status, headers
            return written.append

        changes: set[tuple[str, ...]] = set()
        _changes.current = changes
        try:
            result = self.app(environ, capture)
            try:
                # The whole body is produced (and every change made) before anything is sent.
                written.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            _changes.current = None
            # Even a failed request may have changed something: the disk follows memory.
            failure = self._persist(changes) if changes else None
        if failure is not None:
            return _s3_error("500 Internal Server Error", "InternalError", failure)
        return response["status"], response["headers"], b"".join(written)

    def _persist(self, changes: set[tuple[str, ...]]) -> str | None:
        """Sync the changes to disk; None, or why they could not be (never acknowledge them)."""
        try:
            self.persistence.sync(changes)
        except Exception as error:
            _log.exception("could not persist %s", sorted(changes))
            return f"the change was not persisted: {error}"
        return None

    @staticmethod
    def _respond(
        start_response: Callable[..., Any], response: tuple[str, list[tuple[str, str]], bytes]
    ) -> list[bytes]:
        status, headers, body = response
        start_response(status, headers)
        return [body]

    def stop_accepting(self, timeout: float) -> bool:
        """Refuse new mutating requests, wait for those in flight; False on timeout."""
        with self._idle:
            self._stopping = True
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


def serve(host: str, port: int, data_dir: Path, buckets: list[str]) -> None:
    """Restore, then serve until SIGTERM/SIGINT; every change is durable when answered."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # werkzeug logs every request; that is noise in the stack's log file.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # SIGTERM/SIGINT stay blocked in every thread (threads inherit the mask) and are taken
    # by the main thread with sigwait: a handler could run late, or not at all while the
    # main thread sleeps, if the kernel delivered the signal to a request thread.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    install_change_recording()
    store = ObjectStore(data_dir / "objects")
    _make_dirs(store.root)
    persistence = Persistence(store)
    restored = restore(store, persistence)
    restored += migrate_snapshot(data_dir, persistence)
    for bucket in buckets:
        _ensure_backend_bucket(persistence, bucket)

    app = WriteThrough(DomainDispatcherApplication(create_backend_app), persistence)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    serving = threading.Thread(target=server.serve_forever, name="s3-server", daemon=True)
    serving.start()
    endpoint = f"http://{host}:{port}"
    # The ready file is what `lakehouse-stack start` waits for: restore is finished.
    (data_dir / "ready").write_text(endpoint)
    _log.info("S3 server ready at %s (%d objects restored)", endpoint, restored)
    received = signal.sigwait(stop_signals)
    _log.info("%s received: stopping", signal.Signals(received).name)
    (data_dir / "ready").unlink(missing_ok=True)
    server.shutdown()  # no new connections
    server.server_close()
    serving.join()
    if not app.stop_accepting(_IN_FLIGHT_GRACE_SECONDS):
        _log.warning("requests still in flight after %.0f s; stopping", _IN_FLIGHT_GRACE_SECONDS)
    _log.info("stopped (every acknowledged change is in %s)", store.root)


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

    def stop(self, timeout: float = 90.0) -> bool:
        """Stop the server (SIGTERM: it lets requests in flight finish; data is already on disk)."""
        return self.process.stop(timeout=timeout)


if __name__ == "__main__":
    sys.exit(main())
