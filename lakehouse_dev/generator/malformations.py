"""Malformed payloads, one function per way a real feed breaks a record."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from lakehouse_dev.generator.spec import (
    MalformFn,
)

if TYPE_CHECKING:
    pass


_GARBAGE: Final = (
    b"<html><body><h1>502 Bad Gateway</h1><!-- request %d --></body></html>",
    b"ERROR serializer: event %d dropped, see producer log",
    b"\x00\x01\x02\x03\xfe\xff binary frame %d",
    b"id=%d;name=Ada;amount=12.50",
)


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _not_json(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    # A misbehaving producer that writes error pages or binary frames sends no key
    # either. Numbered, so no two of them look like re-sends of each other.
    return None, _GARBAGE[turn % len(_GARBAGE)] % turn


def _truncated_json(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    # Cut inside the object: the closing brace is gone, so it never parses.
    return key, value[: max(1, len(value) * 2 // 3)]


def _invalid_utf8(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    # 0xC3 0x28 is an invalid two-byte sequence: the JSON text is not UTF-8.
    return key, value.replace(b'"name":"', b'"name":"\xc3\x28', 1)


def _missing_field(required: tuple[str, ...]) -> MalformFn:
    def malform(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
        document = json.loads(value)
        del document[required[turn % len(required)]]
        return key, _dumps(document)

    return malform


def _plain_wrong_type(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    document = json.loads(value)
    document["amount"] = "abc"
    return key, _dumps(document)


def _order_wrong_type(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    document = json.loads(value)
    variant = turn % 3
    if variant == 0:
        document["items"][0]["unit_price"] = "abc"
    elif variant == 1:
        document["items"][0]["quantity"] = "two"
    else:
        document["version"] = "three"
    return key, _dumps(document)
