"""One response streamed into a sink, retried and resumed until it is complete and intact.

:func:`download` makes a GET request and writes the body, chunk by chunk and exactly as
received, into a sink (an S3 multipart upload for the raw copy; never the whole body
in memory). What it does about failures:

* **Retries** on 408, 425, 429 and 5xx answers, connection errors and resets, timeouts
  and bodies that break off, with exponential backoff (``backoff_initial_seconds``,
  doubling, at most ``backoff_max_seconds``) and jitter (each wait is drawn between
  ``1 - jitter`` and 1 times that). A ``Retry-After`` (seconds or an HTTP date) is
  waited out at least; one longer than ``retry_after_max_seconds`` fails at once.
  Other 4xx answers fail at once: asking again would get the same answer.
* **Resumes**: when a body breaks off and the server said ``Accept-Ranges: bytes``,
  the next attempt asks for the rest (``Range: bytes=<received>-``, with ``If-Range``
  naming the ETag or Last-Modified it had) and appends a ``206`` answer whose
  ``Content-Range`` starts where the bytes end. A ``200`` instead (no range support, or
  the representation changed) starts the sink over, so no byte is written twice.
* **Detects truncated bodies** by length (``Content-Length``, or the total of
  ``Content-Range``; the HTTP client also refuses a body shorter than its declared
  length) and by checksum when the server sends one (``Repr-Digest`` or ``Digest``
  with sha-256 or md5, ``Content-MD5`` on a full response): a mismatch discards the
  bytes and starts over.

The sink is committed only when the body is complete and intact, and discarded on
a failure for good, which raises :class:`~resources.http.errors.HttpSourceError`
naming the URL and the attempts made.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from resources.http.errors import HttpSourceError

#: Statuses worth asking again for: the server may answer differently later.
RETRY_STATUSES = frozenset({408, 425, 429})

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_DIGEST_ITEM = re.compile(r"\s*([A-Za-z0-9-]+)\s*=\s*:?([A-Za-z0-9+/=]+):?\s*")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is repeated (see the module docstring)."""

    max_attempts: int = 6
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    jitter: float = 0.5
    retry_after_max_seconds: float = 600.0

    def backoff(self, failed_attempts: int, rng: random.Random) -> float:
        """The wait after the ``failed_attempts``-th failure: exponential, capped, jittered."""
        base = min(
            self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** (failed_attempts - 1)
        )
        return base * (1 - self.jitter * rng.random())


class Sink(Protocol):
    """Where a body goes: written in order, then committed (visible) or discarded."""

    def write(self, data: bytes) -> object: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


@dataclass(frozen=True)
class Download:
    """A complete, intact body, stored in its sink."""

    url: str
    size: int
    sha256: str
    attempts: int
    resumed: int
    """Attempts that continued a broken-off body with a range request."""
    restarted: int
    """Times the body was started over (no range support, changed, or a bad checksum)."""
    headers: httpx.Headers
    """The headers of the response that completed it (Link, Content-Type, ...)."""


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class _Progress:
    """The bytes in the current sink, and what is known about the representation."""

    received: int = 0
    total: int | None = None
    validator: str | None = None
    resumable: bool = False
    expected: dict[str, str] = field(default_factory=dict)
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    md5: hashlib._Hash = field(default_factory=hashlib.md5)

    def add(self, chunk: bytes) -> None:
        self.received += len(chunk)
        self.sha256.update(chunk)
        self.md5.update(chunk)

    def mismatch(self) -> str | None:
        """Which declared checksum the bytes do not match, if any."""
        actual = {
            "sha-256": base64.b64encode(self.sha256.digest()).decode(),
            "md5": base64.b64encode(self.md5.digest()).decode(),
        }
        for algorithm, declared in self.expected.items():
            if actual[algorithm] != declared:
                return f"{algorithm} of the {self.received} bytes received is {actual[algorithm]}, the server declared {declared}"
        return None


def download(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str],
    open_sink: Callable[[], Sink],
    policy: RetryPolicy,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Download:
    """GET ``url`` into a sink from ``open_sink`` (called again for each start-over).

    Raises:
        HttpSourceError: the body could not be had complete within the policy; it names
            the URL, the attempts and the last failure. The sink is discarded.
    """
    rng = rng or random.Random()
    sink = open_sink()
    progress = _Progress()
    attempts = resumed = restarted = 0
    try:
        while True:
            attempts += 1
            request = {"Accept-Encoding": "identity", **headers}
            resuming = progress.received > 0 and progress.resumable
            if resuming:
                request["Range"] = f"bytes={progress.received}-"
                if progress.validator:
                    request["If-Range"] = progress.validator
            elif progress.received:
                sink.discard()
                sink, progress = open_sink(), _Progress()
                restarted += 1
            try:
                with client.stream("GET", url, headers=request) as response:
                    if resuming and response.status_code == 206:
                        _continue(response, progress)
                        resumed += 1
                    else:
                        _check_status(response, url, attempts, resuming)
                        if progress.received:
                            # A full answer to a range request: the server ignored the
                            # range or the representation changed. Start over.
                            sink.discard()
                            sink, progress = open_sink(), _Progress()
                            restarted += 1
                        _start(response, progress)
                    for chunk in response.iter_raw():
                        sink.write(chunk)
                        progress.add(chunk)
                    final_headers = response.headers
                if progress.total is not None and progress.received != progress.total:
                    raise _Retry(f"truncated body: {progress.received} of {progress.total} bytes")
                mismatch = progress.mismatch()
                if mismatch is not None:
                    progress.resumable = False  # the bytes are wrong: start over
                    raise _Retry(f"checksum mismatch: {mismatch}")
                sink.commit()
                return Download(
                    url=url,
                    size=progress.received,
                    sha256=progress.sha256.hexdigest(),
                    attempts=attempts,
                    resumed=resumed,
                    restarted=restarted,
                    headers=final_headers,
                )
            except _Retry as exc:
                reason, retry_after = str(exc), exc.retry_after
            except httpx.TransportError as exc:
                reason, retry_after = f"{type(exc).__name__}: {exc or 'no detail'}", None
            if attempts >= policy.max_attempts:
                raise HttpSourceError(url, attempts, f"the last attempt ended in {reason}")
            wait = policy.backoff(attempts, rng)
            if retry_after is not None:
                if retry_after > policy.retry_after_max_seconds:
                    raise HttpSourceError(
                        url,
                        attempts,
                        f"{reason} with Retry-After {retry_after:.0f}s, longer than "
                        f"retry.retry_after_max_seconds ({policy.retry_after_max_seconds:.0f}s)",
                    )
                wait = max(wait, retry_after)
            if log is not None:
                where = (
                    f"; will resume from byte {progress.received}"
                    if progress.received and progress.resumable
                    else ""
                )
                log(
                    f"GET {url}: {reason} (attempt {attempts} of {policy.max_attempts}); "
                    f"retrying in {wait:.2f}s{where}"
                )
            sleep(wait)
    except BaseException:
        sink.discard()
        raise


def _check_status(response: httpx.Response, url: str, attempts: int, resuming: bool) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in RETRY_STATUSES or status >= 500:
        raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
    if status == 416 and resuming:
        raise _Retry("HTTP 416 for the rest of the body")
    snippet = response.read()[:300].decode("utf-8", "replace")
    raise HttpSourceError(url, attempts, f"HTTP {status} {response.reason_phrase}: {snippet!r}")


def _start(response: httpx.Response, progress: _Progress) -> None:
    """A full (200) response: what it says about its length, checksums and ranges."""
    headers = response.headers
    length = headers.get("Content-Length")
    progress.total = int(length) if length is not None and length.isdigit() else None
    etag = headers.get("ETag")
    progress.validator = (
        etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    )
    progress.resumable = headers.get("Accept-Ranges", "").lower() == "bytes"
    progress.expected = _declared_digests(headers, full=True)


def _continue(response: httpx.Response, progress: _Progress) -> None:
    """A 206 answer must continue exactly where the bytes end."""
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if match is None or int(match[1]) != progress.received:
        progress.resumable = False
        raise _Retry(
            f"a range answer {response.headers.get('Content-Range')!r} that does not "
            f"continue at byte {progress.received}"
        )
    if match[3] != "*":
        progress.total = int(match[3])
    # Repr-Digest is of the whole representation, also on a partial answer.
    progress.expected.update(_declared_digests(response.headers, full=False))


def _declared_digests(headers: httpx.Headers, *, full: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("Repr-Digest", "Digest"):
        for item in headers.get(name, "").split(","):
            match = _DIGEST_ITEM.fullmatch(item) if item.strip() else None
            if match is not None and match[1].lower() in ("sha-256", "md5"):
                found[match[1].lower()] = match[2]
    if full and "Content-MD5" in headers:
        found.setdefault("md5", headers["Content-MD5"].strip())
    return found


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` asks for (delay-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
