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
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse_dev.processes import ManagedProcess, port_is_open, tail, wait_until
from lakehouse_dev.s3_persistence import (
    _DEFAULT_REGION,
    ObjectStore,
    Persistence,
    _changes,
    _ensure_backend_bucket,
    _make_dirs,
    install_change_recording,
    migrate_snapshot,
    restore,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# moto accepts any credentials; these only satisfy botocore's signer.
_LOCAL_KEY = "lakehouse-local"
_log = logging.getLogger("lakehouse.s3_server")

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
