"""Errors of HTTP sources: each names the URL, the attempts made and what went wrong."""

from __future__ import annotations


class HttpSourceError(RuntimeError):
    """A request of an HTTP source failed for good; nothing of its day was landed.

    Attributes:
        url: the request's URL (query included; credentials travel in headers only).
        attempts: requests made for it, resumed downloads included.
    """

    def __init__(self, url: str, attempts: int, reason: str) -> None:
        self.url = url
        self.attempts = attempts
        self.reason = reason
        super().__init__(
            f"GET {url} failed after {attempts} attempt(s): {reason}. Nothing of the day was "
            "landed (the bronze day is as it was); the responses received are kept under the "
            "run's raw/ prefix. Re-materialise the day once the source answers."
        )


class ResponseFormatError(ValueError):
    """A response that does not parse as its configured format, or a value that does not
    fit its contract type; names the raw object, the record and the field."""
