"""Sending one :class:`VendorRequest`: the only place aiohttp/asyncio errors become ours.

Translation (always ``raise ... from exc``)::

    TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError  -> VendorTimeout
    ClientConnectorError (refused, DNS, TLS), ServerDisconnectedError,
    ClientOSError / ConnectionError (reset), ClientPayloadError (cut off) -> ConnectionFailed
    ClientResponseError (a malformed HTTP answer)                     -> BadResponse
    InvalidURL                                                        -> ProviderUnavailable
    any other aiohttp.ClientError                                     -> ConnectionFailed

Messages name the failure and the exception type only: never the URL (query strings
may carry keys), headers or bodies. HTTP error statuses are not errors here; the
adapter's ``parse_response`` maps them.
"""

from __future__ import annotations

import io

import aiohttp
from multidict import CIMultiDict

from worker.errors import (
    BadResponse,
    ConnectionFailed,
    JobError,
    ProviderUnavailable,
    VendorTimeout,
)
from worker.providers.base import VendorRequest, VendorResponse

# aiohttp warns (ResourceWarning) when a bytes body is over 1 MiB; a BytesIO is streamed
# in chunks instead, with the same Content-Length. Our explicit Content-Type still wins.
_STREAM_OVER = 1 << 20


def _form(request: VendorRequest) -> aiohttp.FormData | io.BytesIO | bytes | None:
    if request.multipart is None:
        body = request.body
        return io.BytesIO(body) if body is not None and len(body) > _STREAM_OVER else body
    form = aiohttp.FormData(quote_fields=False)
    for name, value, filename, content_type in request.multipart:
        big = isinstance(value, bytes) and len(value) > _STREAM_OVER
        part = io.BytesIO(value) if big and isinstance(value, bytes) else value
        form.add_field(name, part, filename=filename, content_type=content_type)
    return form


async def send(
    session: aiohttp.ClientSession,
    request: VendorRequest,
    *,
    provider: str,
    timeout: float,  # noqa: ASYNC109 - per-provider setting, becomes aiohttp.ClientTimeout
) -> VendorResponse:
    """Send ``request`` and read the whole answer within ``timeout`` seconds."""
    try:
        async with session.request(
            request.method,
            request.url,
            headers=dict(request.headers),
            data=_form(request),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,  # vendor APIs don't redirect; a redirect is a wrong URL
        ) as response:
            body = await response.read()
            return VendorResponse(response.status, CIMultiDict(response.headers), body)
    except TimeoutError as exc:  # asyncio.TimeoutError and aiohttp.ServerTimeoutError too
        raise _error(VendorTimeout, f"no answer within {timeout:g}s", provider, exc) from exc
    except aiohttp.ClientConnectorError as exc:
        raise _error(ConnectionFailed, "could not connect", provider, exc) from exc
    except (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientOSError,
        aiohttp.ClientPayloadError,
        ConnectionError,
    ) as exc:
        raise _error(ConnectionFailed, "connection lost", provider, exc) from exc
    except aiohttp.ClientResponseError as exc:
        raise _error(BadResponse, "malformed HTTP answer", provider, exc) from exc
    except aiohttp.InvalidURL as exc:
        raise _error(ProviderUnavailable, "invalid base_url", provider, exc) from exc
    except aiohttp.ClientError as exc:
        raise _error(ConnectionFailed, "request failed", provider, exc) from exc


def _error(kind: type[JobError], what: str, provider: str, exc: BaseException) -> JobError:
    return kind(f"{what} ({type(exc).__name__})", provider=provider)
