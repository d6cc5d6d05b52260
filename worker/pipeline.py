"""One job: source -> prepare -> limit -> call -> outcome. No Celery, no database.

:func:`run_job` never raises for a job's own failure: it returns a :class:`JobRun`
holding the vendor's answer, a :class:`~worker.errors.JobError`, or the limiter's
give-back. Storage and retry decisions belong to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from redis.exceptions import RedisError

from worker import http, imaging
from worker.config import Settings
from worker.errors import (
    ConfigError,
    InvalidImage,
    JobError,
    LimiterBusy,
    Outcome,
    ProviderUnavailable,
    Transient,
)
from worker.fetch import fetch_url
from worker.ingest import is_url
from worker.outcome import CallFacts, JobRun, SourceFacts
from worker.providers.base import Provider, VendorRequest, rate_of
from worker.ratelimit import Limiter

log = logging.getLogger(__name__)
LIMITER_DOWN_RETRY_SECONDS = 5.0


async def load_source(uri: str, session: aiohttp.ClientSession, settings: Settings) -> bytes:
    """The submitted bytes: a URL fetched with the SSRF guards, or a file read off-loop."""
    if is_url(uri):
        return await fetch_url(
            session,
            uri,
            max_bytes=settings.fetch_max_bytes,
            timeout=settings.fetch_timeout_seconds,
            max_redirects=settings.fetch_max_redirects,
            allow_networks=settings.fetch_allow_networks,
        )
    try:
        return await asyncio.to_thread(Path(uri).read_bytes)
    except OSError as exc:
        raise InvalidImage(f"cannot read source file: {exc.strerror or exc}") from exc


async def run_job(
    provider: Provider,
    source_uri: str,
    options: Mapping[str, str],
    *,
    expected_sha256: str | None,
    session: aiohttp.ClientSession,
    limiter: Limiter,
    settings: Settings,
) -> JobRun:
    facts: SourceFacts | None = None
    try:
        data = await load_source(source_uri, session, settings)
        digest = hashlib.sha256(data).hexdigest()
        info = imaging.probe(data)
        facts = SourceFacts(
            sha256=digest,
            size=len(data),
            width=info.width if info else None,
            height=info.height if info else None,
            format=info.format if info else None,
        )
        if expected_sha256 is not None and digest != expected_sha256:
            raise InvalidImage("source changed since it was submitted (sha256 differs)")
        # CPU-bound: off the event loop, so other calls keep flowing meanwhile.
        prepared = await asyncio.to_thread(imaging.prepare, data, provider.limits)
        try:
            request = provider.build_request(prepared, options)
        except ConfigError as exc:  # e.g. no credentials: stop calling this provider
            raise ProviderUnavailable(str(exc), provider=provider.name) from exc
    except JobError as exc:
        exc.provider = exc.provider or provider.name
        return JobRun(error=exc, source=facts)
    except Exception as exc:  # a bug must not wedge the job: retried, then failed, with its name
        error = Transient(f"unexpected {type(exc).__name__} preparing the image: {exc}"[:500])
        error.provider = provider.name
        return JobRun(error=error, source=facts)
    return await _call(provider, request, limiter, session, settings, facts)


async def _call(
    provider: Provider,
    request: VendorRequest,
    limiter: Limiter,
    session: aiohttp.ClientSession,
    settings: Settings,
    facts: SourceFacts,
) -> JobRun:
    key = f"{provider.name}:{provider.credential_id()}"
    async with limiter.in_flight(key, provider.settings.max_in_flight):
        try:
            await limiter.acquire(
                key, rate_of(provider), max_wait=settings.limiter_max_wait_seconds
            )
        except LimiterBusy as busy:
            return JobRun(give_back=busy.wait, source=facts)
        except (RedisError, OSError) as exc:
            # The shared limiter is down: no call may go out unpaced. Give the job back
            # (no attempt is charged); the dispatcher offers it again shortly.
            log.warning("rate limiter unavailable for %s: %s", key, type(exc).__name__)
            return JobRun(give_back=LIMITER_DOWN_RETRY_SECONDS, source=facts)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            response = await http.send(
                session, request, provider=provider.name, timeout=provider.settings.timeout
            )
            answer = provider.parse_response(response)
        except JobError as exc:
            exc.provider = exc.provider or provider.name
            if exc.outcome is Outcome.RATE_LIMITED:
                with contextlib.suppress(RedisError, OSError):  # best effort: the answer counts
                    await limiter.penalize(key, retry_after=exc.retry_after)
            call = CallFacts(
                started_at=started,
                duration_ms=(time.perf_counter() - t0) * 1000,
                http_status=exc.http_status,
                vendor_code=exc.vendor_code,
                request_id=exc.request_id,
                billed=exc.billed,
            )
            return JobRun(error=exc, call=call, source=facts)
        except Exception as exc:  # a bug in an adapter must not wedge the job: retry, then fail
            error = Transient(f"unexpected {type(exc).__name__} in {provider.name} adapter")
            error.provider = provider.name
            return JobRun(error=error, source=facts)
    call = CallFacts(
        started_at=started,
        duration_ms=(time.perf_counter() - t0) * 1000,
        http_status=response.status,
        vendor_code=answer.vendor_code,
        request_id=answer.request_id,
        billed=answer.billed,
    )
    return JobRun(answer=answer, call=call, source=facts)
