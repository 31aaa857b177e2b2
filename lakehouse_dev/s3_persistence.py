"""What makes the local S3 server durable: every acknowledged change on disk first.

Objects and buckets are files under ``<data_dir>/objects`` (:class:`ObjectStore`,
written to a temporary file, fsynced and renamed into place); moto's backend records
which buckets and keys a request changed (:func:`install_change_recording`), and
:class:`Persistence` writes exactly those through before the server answers. At start,
:func:`restore` loads the files back into the backend, and :func:`migrate_snapshot`
imports the older save-at-stop format once.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import inspect
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.s3.models import FakeBucket


#: The server's logger: persistence reports there too.
_log = logging.getLogger("lakehouse.s3_server")
_DEFAULT_REGION = "us-east-1"

# Changes made by the request that the current thread is serving: ("bucket", name) or
# ("key", bucket, key). None outside a request (restore at start records nothing).
_changes = threading.local()

_BUCKET_FILE = "bucket.json"


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


def _find_bucket(name: str) -> FakeBucket | None:
    """The bucket called ``name`` in whichever account's S3 backend holds it, or None."""
    from moto.s3.models import s3_backends

    owner = s3_backends.bucket_accounts.get(name)
    if owner is None:
        return None
    partition, account_id = owner
    return s3_backends[account_id][partition].buckets.get(name)


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
