"""Errors that name the service, the setting to look at and the reason."""

from __future__ import annotations


class ServiceUnreachableError(ConnectionError):
    """A configured endpoint does not answer.

    Raised instead of the client library's own error so that the message names the
    service, the address, the configuration key that set it and what to do.
    """

    def __init__(self, service: str, address: str, setting: str, reason: str) -> None:
        self.service = service
        self.address = address
        self.setting = setting
        super().__init__(
            f"{service} at {address} is unreachable ({reason}). The address comes from "
            f"`{setting}`; is the service running (`make stack-start` starts the local stack)?"
        )
