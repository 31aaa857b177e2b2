"""The raw copy of an HTTP source's responses in the object store, bytes as received.

Layout: ``s3://<bucket>/<raw_prefix>/<dataset>/run_id=<run>/date=<day>/page=<nnnnn>.<format>``:
every run keeps its own responses, so a landing can be traced to the exact bytes it
was made from, and a failed run's responses stay for inspection.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from resources.s3.client import S3Resource

if TYPE_CHECKING:
    import s3fs

#: Multipart part size of a raw upload: bytes held in memory per download.
PART_BYTES = 8 * 1024 * 1024


class S3Sink:
    """A body streamed into one S3 object: visible only once committed (multipart)."""

    def __init__(self, fs: s3fs.S3FileSystem, path: str) -> None:
        self.path = path
        self._file = fs.open(path, "wb", block_size=PART_BYTES)

    def write(self, data: bytes) -> int:
        return int(self._file.write(data))

    def commit(self) -> None:
        self._file.close()

    def discard(self) -> None:
        if not self._file.closed:
            with contextlib.suppress(Exception):
                self._file.discard()
            self._file.closed = True


@dataclass(frozen=True)
class RawStore:
    """Where one run's responses of one dataset go, and how to read them back."""

    s3: S3Resource
    prefix: str
    dataset: str
    run_id: str

    def filesystem(self) -> s3fs.S3FileSystem:
        import s3fs

        return s3fs.S3FileSystem(
            **self.s3.storage_options(), use_listings_cache=False, skip_instance_cache=True
        )

    def run_prefix(self) -> str:
        return f"{self.s3.bucket}/{self.prefix}/{self.dataset}/run_id={self.run_id}"

    def page_path(self, day: str, number: int, extension: str) -> str:
        return f"{self.run_prefix()}/date={day}/page={number:05d}.{extension}"

    def open_sink(self, fs: s3fs.S3FileSystem, path: str) -> S3Sink:
        with self.s3.named_errors(f"writing s3://{path}"):
            return S3Sink(fs, path)

    def open(self, fs: s3fs.S3FileSystem, path: str) -> IO[bytes]:
        with self.s3.named_errors(f"reading s3://{path}"):
            return fs.open(path, "rb", block_size=PART_BYTES)
