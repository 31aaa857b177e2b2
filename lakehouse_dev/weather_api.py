"""A local weather API on loopback: Open-Meteo's archive endpoint, serving generated data.

``GET /v1/archive`` (and ``/v1/forecast``) with ``latitude``, ``longitude``,
``start_date``, ``end_date`` and ``hourly`` answers what
:func:`lakehouse_dev.generator.weather.hourly_weather` makes for them, as a real HTTP
server does: ``Content-Length``, a strong ``ETag``, ``Repr-Digest`` (sha-256),
``Accept-Ranges: bytes`` and ``206`` answers to ``Range: bytes=N-``. Errors look like
Open-Meteo's (``400 {"error": true, "reason": ...}``).

Faults can be scripted for tests and drills (:class:`Fault`, :attr:`WeatherApi.faults`):
each request takes the next fault of the list, if any: an error status (with headers
such as ``Retry-After``), a connection reset after some bytes of the body, a body cut
short under a consistent ``Content-Length``, or a slow body.

``lakehouse-stack start`` runs it as a process (:class:`WeatherApiServer`) on
``stack.weather_port`` when a dataset's ``http.url`` points there; tests run it in a
thread (:func:`serve_in_thread`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lakehouse_dev.generator.weather import DEFAULT_VARIABLES, UNITS, hourly_weather, weather_body
from lakehouse_dev.processes import ManagedProcess, port_is_open, tail, wait_until


@dataclass(frozen=True)
class Fault:
    """What one request gets instead of a clean answer.

    ``status``: answer this status (with ``headers``) and a short error body.
    ``reset_after``: send the headers and this many body bytes, then reset the connection.
    ``close_after``: send this many body bytes, then close the connection cleanly: the
    body falls short of its ``Content-Length``.
    ``truncate_to``: send only this many bytes, with a ``Content-Length`` that matches
    them and the ``Repr-Digest`` of the whole body (only a checksum can tell).
    ``delay``: seconds to wait before each of ``chunks`` slices of the body.
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reset_after: int | None = None
    close_after: int | None = None
    truncate_to: int | None = None
    delay: float = 0.0
    chunks: int = 4
    ranges: bool = True
    """False: the answer does not offer ranges (and a range request gets the whole body)."""


@dataclass
class WeatherApi:
    """What the server serves: the generator's seed, scripted faults and a request log."""

    seed: int = 0
    faults: deque[Fault] = field(default_factory=deque)
    edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Changes each document before it is sent (a test's bad or repeated records)."""
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self, record: dict[str, str]) -> Fault | None:
        with self.lock:
            self.requests.append(record)
            return self.faults.popleft() if self.faults else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        api = self.server.api
        parts = urlsplit(self.path)
        fault = api.next_fault(
            {
                "path": self.path,
                "range": self.headers.get("Range", ""),
                "if_range": self.headers.get("If-Range", ""),
                "authorization": self.headers.get("Authorization", ""),
            }
        )
        if parts.path not in ("/v1/archive", "/v1/forecast"):
            self._error(404, f"no endpoint {parts.path}")
            return
        if fault is not None and fault.status is not None:
            self._error(fault.status, f"injected status {fault.status}", fault.headers)
            return
        try:
            body = self._body(parse_qs(parts.query), api)
        except ValueError as exc:
            self._error(400, str(exc))
            return
        self._send(body, fault or Fault())

    def _body(self, query: dict[str, list[str]], api: WeatherApi) -> bytes:
        def one(name: str) -> str:
            if name not in query:
                raise ValueError(f"Parameter '{name}' is required")
            return query[name][0]

        latitude, longitude = float(one("latitude")), float(one("longitude"))
        start, end = date.fromisoformat(one("start_date")), date.fromisoformat(one("end_date"))
        if end < start:
            raise ValueError("End-date must be larger or equal than start-date")
        names = [n for v in query.get("hourly", []) for n in v.split(",") if n]
        unknown = [n for n in names if n not in UNITS]
        if unknown:
            raise ValueError(
                f"Cannot initialize WeatherVariable from invalid String value {unknown[0]}"
            )
        timezone = query.get("timezone", ["GMT"])[0]
        if timezone not in ("GMT", "UTC"):
            raise ValueError("this local API serves timezone=GMT only")
        variables = names or DEFAULT_VARIABLES
        if api.edit is None:
            return weather_body(latitude, longitude, start, end, variables, api.seed)
        document = api.edit(hourly_weather(latitude, longitude, start, end, variables, api.seed))
        return json.dumps(document, separators=(",", ":")).encode()

    def _error(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": True, "reason": reason}).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send(self, body: bytes, fault: Fault) -> None:
        digest = hashlib.sha256(body).digest()
        etag = f'"{digest[:12].hex()}"'
        start = 0
        wanted = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if (
            fault.ranges
            and wanted.startswith("bytes=")
            and wanted.endswith("-")
            and if_range in (None, etag)
        ):
            start = int(wanted[len("bytes=") : -1])
        if start >= len(body) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        part = body[start:]
        if fault.truncate_to is not None:
            part = part[: fault.truncate_to]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(part)))
        self.send_header("ETag", etag)
        self.send_header("Repr-Digest", f"sha-256=:{base64.b64encode(digest).decode()}:")
        if fault.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if fault.reset_after is not None:
            self.wfile.write(part[: fault.reset_after])
            self.wfile.flush()
            # SO_LINGER 0: close with a TCP RST, as a dropped connection looks to the client.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if fault.close_after is not None:
            self.wfile.write(part[: fault.close_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        step = max(1, -(-len(part) // max(1, fault.chunks)))
        for offset in range(0, len(part), step):
            if fault.delay:
                time.sleep(fault.delay)
            self.wfile.write(part[offset : offset + step])
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: WeatherApi, verbose: bool) -> None:
        self.api = api
        self.verbose = verbose
        super().__init__(address, _Handler)


@dataclass
class RunningApi:
    """A weather API served from a thread of this process (tests)."""

    server: _Server
    thread: threading.Thread

    @property
    def api(self) -> WeatherApi:
        return self.server.api

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def serve_in_thread(
    api: WeatherApi | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningApi:
    """Serve on ``host:port`` (0: a free port) from a daemon thread until :meth:`RunningApi.stop`."""
    server = _Server((host, port), api or WeatherApi(), verbose=False)
    thread = threading.Thread(target=server.serve_forever, name="weather-api", daemon=True)
    thread.start()
    return RunningApi(server, thread)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = _Server((args.host, args.port), WeatherApi(seed=args.seed), verbose=True)
    print(f"weather API on http://{args.host}:{args.port}/v1/archive", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


class WeatherApiServer:
    """The local weather API as a process of the stack: idempotent start, clean stop."""

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.process = ManagedProcess(
            name="weather API",
            pid_file=data_dir / "weather_api.pid",
            log_file=data_dir / "logs" / "weather_api.log",
            marker=f"lakehouse_dev.weather_api --port {port}",
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1/archive"

    def is_running(self) -> bool:
        return self.process.is_alive() and port_is_open(self.host, self.port)

    def start(self, timeout: float = 30.0) -> None:
        if not self.process.is_alive():
            if port_is_open(self.host, self.port):
                raise RuntimeError(
                    f"port {self.host}:{self.port} is taken by another program; the weather API "
                    "needs it (set stack.weather_port and the weather dataset's http.url)"
                )
            argv = [sys.executable, "-m", "lakehouse_dev.weather_api", "--port", str(self.port)]
            self.process.spawn([*argv, "--host", self.host])
        if not wait_until(self.is_running, timeout, process=self.process):
            self.process.stop()
            raise RuntimeError(
                f"the weather API on port {self.port} did not start; its log says:\n"
                f"{tail(self.process.log_file)}"
            )

    def stop(self) -> bool:
        return self.process.stop(timeout=10.0)


if __name__ == "__main__":
    sys.exit(main())
