"""The requests of one day of an HTTP source: its URL, query and headers, page by page."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from resources.config_sections import HttpSourceSettings

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


class MissingCredentialError(RuntimeError):
    """The variable that ``auth_env`` names is unset or empty."""


@dataclass(frozen=True)
class PageRequest:
    """One GET: the URL (query included) and the page's position."""

    url: str
    number: int


def _fill(template: str, day: date) -> str:
    return template.format(date=day.isoformat(), next_date=(day + timedelta(days=1)).isoformat())


def request_headers(
    source: HttpSourceSettings, day: date, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The day's headers, the credential of ``auth_env`` included (never logged)."""
    headers = {name: _fill(value, day) for name, value in source.headers.items()}
    if source.auth_env is not None:
        secret = (os.environ if environ is None else environ).get(source.auth_env, "")
        if not secret:
            raise MissingCredentialError(
                f"the HTTP source's credential variable {source.auth_env} (http.auth_env) is "
                "unset or empty"
            )
        scheme = f"{source.auth_scheme} " if source.auth_scheme else ""
        headers[source.auth_header] = scheme + secret
    return headers


def first_page(source: HttpSourceSettings, day: date) -> PageRequest:
    return PageRequest(_url(source, day, _page_params(source, 0, None)), 0)


def next_page(
    source: HttpSourceSettings,
    day: date,
    current: PageRequest,
    records: int,
    cursor: Any,
    response_headers: httpx.Headers,
) -> PageRequest | None:
    """The request after ``current``, which returned ``records`` records; None at the end."""
    pagination = source.pagination
    number = current.number + 1
    if pagination.kind == "none":
        return None
    if pagination.kind in ("page", "offset"):
        if records == 0 or (pagination.size is not None and records < pagination.size):
            return None
        return PageRequest(_url(source, day, _page_params(source, number, None)), number)
    if pagination.kind == "cursor":
        if cursor in (None, ""):
            return None
        return PageRequest(_url(source, day, _page_params(source, number, cursor)), number)
    match = _LINK_NEXT.search(response_headers.get("Link", ""))
    if match is None:
        return None
    return PageRequest(str(httpx.URL(current.url).join(match[1])), number)


def _page_params(source: HttpSourceSettings, number: int, cursor: Any) -> dict[str, str]:
    pagination = source.pagination
    params: dict[str, str] = {}
    if pagination.kind == "page":
        params[str(pagination.param)] = str(pagination.start + number)
    elif pagination.kind == "offset":
        params[str(pagination.param)] = str(number * int(pagination.size or 0))
    elif pagination.kind == "cursor" and cursor is not None:
        params[str(pagination.param)] = str(cursor)
    if pagination.kind in ("page", "offset") and pagination.size_param:
        params[pagination.size_param] = str(pagination.size)
    return params


def _url(source: HttpSourceSettings, day: date, extra: Mapping[str, str]) -> str:
    base = urlsplit(_fill(source.url, day))
    query = {name: _fill(value, day) for name, value in source.params.items()} | dict(extra)
    joined = "&".join(part for part in (base.query, urlencode(query)) if part)
    return urlunsplit((base.scheme, base.netloc, base.path, joined, base.fragment))
