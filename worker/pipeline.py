"""One job: source -> prepare -> limit -> record -> call -> outcome. No Celery, no database.

:func:`process_jobs` never raises for a job's own failure: it returns a
:class:`~worker.jobrun.JobRun` per job holding the vendor's answer, a
:class:`~worker.errors.JobError`, or the limiter's give-back. What happens next is
:mod:`worker.policy`'s decision, and storage's to write.

Every text a vendor gave passes :mod:`worker.redaction` before the runs are returned.

As the limiter's slot comes due, before its lateness check, the caller's
:class:`CallJournal` writes the call down (the attempts table, as ``in_flight``): a worker
killed while the vendor works leaves a row saying so, and a call that could not be written
down is not sent. The commit's time counts as the slot's lateness, so a slow one costs the
slot (its row withdrawn before the next is reserved), never the vendor's limit.

Nothing a job meets escapes :func:`process_jobs`, since an escape would strand the whole
chunk ``running`` until its leases expire: an unexpected exception at any stage (reading or
fetching the source, preparing the image, the limiter, the journal, sending, the
adapter's parsing) ends that job's run with a :class:`~worker.errors.Transient` naming the
stage and the exception's type (retried, then failed with that reason).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from worker import http, imaging, metrics
from worker.config import Settings
from worker.errors import (
    CallNotRecorded,
    ConfigError,
    InvalidImage,
    JobError,
    LimiterBusy,
    LimiterUnavailable,
    NotConfigured,
    Outcome,
    Transient,
)
from worker.fetch import fetch_url
from worker.ingest import facts_of, is_url
from worker.jobrun import CallFacts, JobRun
from worker.local_files import read_regular
from worker.providers.base import Provider, VendorRequest, VendorResponse, fit_of, rate_of
from worker.ratelimit import AtSlot, Limiter, Slot
from worker.redaction import Redactor
from worker.request_budget import Hold, RequestBudget, process_budget, request_claim
from worker.sources import SourceFacts

log = logging.getLogger(__name__)
LIMITER_DOWN_RETRY_SECONDS = 5.0
JOURNAL_DOWN_RETRY_SECONDS = 5.0


class CallJournal(Protocol):
    """Writes a vendor call down before it is sent (the service's attempts table)."""

    async def calling(self, index: int, started_at: datetime) -> None:
        """Record that the job at ``index`` of the chunk is about to call its vendor.

        Returns once the record is durable; raises :class:`~worker.errors.CallNotRecorded`
        if it could not be written, and then the call is not made.
        """
        ...

    async def withdraw(self, index: int) -> None:
        """Remove the record :meth:`calling` wrote for the job at ``index``: its slot was
        forfeited and the call is not made now (the next slot writes it again).

        Returns once the removal is durable; raises :class:`~worker.errors.CallNotRecorded`
        if it could not be made, and then the record stands until the job's outcome is
        written (a job that made no call: its record goes with it).
        """
        ...


@dataclass(frozen=True)
class JournalPlace:
    """A job's place in its chunk's :class:`CallJournal`."""

    journal: CallJournal
    index: int


class _NotRecorded(Exception):
    """The journal's failure, carried out of the limiter's wait (where the journal runs)
    apart from the limiter's own; ``stage`` says what it was doing."""

    def __init__(self, cause: Exception, stage: str) -> None:
        super().__init__(type(cause).__name__)
        self.cause, self.stage = cause, stage


def _journal_at_slot(place: JournalPlace) -> AtSlot:
    """The limiter's hooks that write the call down as its slot comes due, and withdraw it
    if the slot is then forfeited."""

    async def due() -> None:
        try:
            await place.journal.calling(place.index, datetime.now(UTC))
        except Exception as exc:
            raise _NotRecorded(exc, "recording the call") from exc

    async def undo() -> None:
        try:
            await place.journal.withdraw(place.index)
        except Exception as exc:
            raise _NotRecorded(exc, "withdrawing the call's record") from exc

    return AtSlot(due, undo)


def unexpected(exc: BaseException, stage: str, provider: str) -> Transient:
    """A failure nobody foresaw at ``stage`` ("reading the source"...): retried, then failed,
    with its name. The exception's type only: its text may carry a path or a secret."""
    return Transient(f"unexpected {type(exc).__name__} {stage}", provider=provider)


def read_file(path: str, max_bytes: int) -> bytes:
    """A local source's bytes (regular files only, under the size cap)."""
    try:
        return read_regular(path, max_bytes)
    except InvalidImage as exc:
        raise InvalidImage(f"cannot read source file: {exc.message}") from exc


async def fetch_source(url: str, session: aiohttp.ClientSession, settings: Settings) -> bytes:
    """A URL source's bytes, fetched with the SSRF guards (files: :func:`read_file`)."""
    return await fetch_url(
        session,
        url,
        max_bytes=settings.source_max_bytes,
        timeout=settings.fetch_timeout_seconds,
        max_redirects=settings.fetch_max_redirects,
        allow_networks=settings.fetch_allow_networks,
    )


@dataclass(frozen=True)
class Ready:
    """A job whose signed request is built: it waits only for its slot and the call."""

    request: VendorRequest
    source: SourceFacts


def prepare_job(
    provider: Provider, data: bytes, options: Mapping[str, str], *, expected_sha256: str | None
) -> Ready | JobRun:
    """The CPU part: hash, probe, fit to the provider's limits, build the signed request.

    Runs in the caller's thread; a failure comes back as a finished :class:`JobRun`.
    """
    facts: SourceFacts | None = None
    try:
        facts = facts_of(data)
        if expected_sha256 is not None and facts.sha256 != expected_sha256:
            raise InvalidImage("source changed since it was submitted (sha256 differs)")
        prepared = imaging.prepare(data, provider.limits, fit_of(provider))
        try:
            return Ready(provider.build_request(prepared, options), facts)
        except ConfigError as exc:  # no credentials on this worker: wait, open no circuit
            raise NotConfigured(str(exc), provider=provider.name) from exc
    except JobError as exc:
        exc.provider = exc.provider or provider.name
        return JobRun(error=exc, source=facts)
    except Exception as exc:  # a bug must not wedge the job: retried, then failed, with its name
        message = f"unexpected {type(exc).__name__} preparing the image: {exc}"[:500]
        error = Transient(message, provider=provider.name)
        return JobRun(error=error, source=facts)


@dataclass(frozen=True)
class JobSpec:
    """What a task knows of one job: who to call, with which image and options."""

    provider: Provider
    source_uri: str
    options: Mapping[str, str]
    expected_sha256: str | None


def process_jobs(
    specs: Sequence[JobSpec],
    *,
    run: Callable[[Coroutine[Any, Any, Any]], Any],
    session: aiohttp.ClientSession,
    limiter: Limiter,
    settings: Settings,
    journal: CallJournal | None = None,
    budget: RequestBudget | None = None,
) -> list[JobRun]:
    """The synchronous driver a task thread uses for a chunk of jobs, one result each.

    File reading and image work happen in this thread; ``run`` (the process's event loop)
    gets only I/O: URL fetches, then every job's limiter wait and vendor call gathered in
    one hop. Each hop to the loop competes for the GIL with every other task thread, so
    a chunk costs one, not three per job. ``journal`` (None: calls are not written down
    before they are sent) hears of each call as its slot comes due.

    Each job claims room in ``budget`` (default: this process's, see
    :mod:`worker.request_budget`) before its image is prepared and gives it back when its
    call is over, so prepared requests waiting for the limiter are bounded in bytes. A
    thread refused room while it holds prepared jobs of its chunk sends those first.
    """
    budget = budget or process_budget()
    results: list[JobRun | None] = [None] * len(specs)
    batch: list[tuple[int, Provider, Ready, Hold]] = []
    try:
        for index, spec in enumerate(specs):
            claim = request_claim(spec.provider.limits.max_b64_bytes)
            hold = budget.try_claim(claim) if batch else budget.claim(claim)
            if hold is None:  # no room while holding some: never wait on ourselves
                _send(batch, results, run, limiter, session, settings, journal)
                hold = budget.claim(claim)
            try:
                outcome = _prepare_spec(spec, run, session, settings)
            except BaseException:
                hold.release()
                raise
            if isinstance(outcome, Ready):
                hold.resize(request_bytes(outcome.request))
                batch.append((index, spec.provider, outcome, hold))
            else:
                hold.release()
                results[index] = outcome
            del outcome  # the batch alone holds the request, so sending frees it
        _send(batch, results, run, limiter, session, settings, journal)
    finally:
        for *_, held in batch:  # an escape (an interrupt): nothing stays claimed
            held.release()
    redactor = Redactor.of(settings)
    return [redacted(r, redactor) for r in results if r is not None]


def request_bytes(request: VendorRequest) -> int:
    """The bytes a prepared request holds: its body and multipart values."""
    parts = request.multipart or ()
    return len(request.body or b"") + sum(len(value) for _, value, _, _ in parts)


def _send(
    batch: list[tuple[int, Provider, Ready, Hold]],
    results: list[JobRun | None],
    run: Callable[[Coroutine[Any, Any, Any]], Any],
    limiter: Limiter,
    session: aiohttp.ClientSession,
    settings: Settings,
    journal: CallJournal | None,
) -> None:
    """The prepared jobs of ``batch`` through the limiter and to their vendor, in one hop to
    the loop; their results into ``results``, their room given back as each call ends.
    Empties ``batch``: afterwards no reference to the requests is left here."""
    if not batch:
        return

    async def one(index: int, provider: Provider, ready: Ready, hold: Hold) -> JobRun:
        place = None if journal is None else JournalPlace(journal, index)
        try:
            return await call_job(provider, ready, limiter, session, settings, journal=place)
        finally:
            hold.release()

    work = list(batch)
    jobs = [(index, provider, ready.source, hold) for index, provider, ready, hold in batch]
    batch.clear()

    async def calls() -> list[JobRun | BaseException]:
        pending = [one(*job) for job in work]
        work.clear()  # the coroutines alone hold the requests: each is freed as it ends
        # One job's escape must not take the others.
        return list(await asyncio.gather(*pending, return_exceptions=True))

    done = _hop(run, calls, len(jobs))
    work.clear()
    for (index, provider, source, hold), outcome in zip(jobs, done, strict=True):
        hold.release()  # a call that never ran (the hop failed) gives its room back here
        if isinstance(outcome, BaseException):
            error = unexpected(outcome, "calling the vendor", provider.name)
            results[index] = JobRun(error=error, source=source)
        else:
            results[index] = outcome


def redacted(run: JobRun, redactor: Redactor) -> JobRun:
    """``run`` with every text the vendor gave (answer, error, codes) passed through
    ``redactor``: a vendor echoing a credential stores and prints none."""
    answer, call = run.answer, run.call
    if answer is not None:
        answer = dataclasses.replace(
            answer,
            raw=redactor.json(answer.raw),
            readings=[redactor.fields(reading) for reading in answer.readings],
            vendor_code=redactor.optional(answer.vendor_code),
            request_id=redactor.optional(answer.request_id),
            warnings=[redactor.text(w) for w in answer.warnings],
        )
    if call is not None:
        call = dataclasses.replace(
            call,
            vendor_code=redactor.optional(call.vendor_code),
            request_id=redactor.optional(call.request_id),
        )
    error = redactor.error(run.error) if run.error is not None else None
    return dataclasses.replace(run, answer=answer, call=call, error=error)


def _hop(
    run: Callable[[Coroutine[Any, Any, Any]], Any],
    calls: Callable[[], Coroutine[Any, Any, list[JobRun | BaseException]]],
    n: int,
) -> list[JobRun | BaseException]:
    """The chunk's calls on the loop; if the hop itself fails (the loop stopping), that
    failure for every one of them."""
    try:
        done: list[JobRun | BaseException] = run(calls())
    except Exception as exc:
        return [exc] * n
    return done


def _prepare_spec(
    spec: JobSpec,
    run: Callable[[Coroutine[Any, Any, Any]], Any],
    session: aiohttp.ClientSession,
    settings: Settings,
) -> Ready | JobRun:
    url = is_url(spec.source_uri)
    try:
        if url:
            data: bytes = run(fetch_source(spec.source_uri, session, settings))
        else:
            data = read_file(spec.source_uri, settings.source_max_bytes)
    except JobError as exc:
        exc.provider = exc.provider or spec.provider.name
        return JobRun(error=exc)
    except Exception as exc:
        stage = "fetching the source" if url else "reading the source"
        return JobRun(error=unexpected(exc, stage, spec.provider.name))
    started = time.perf_counter()
    prepared = prepare_job(spec.provider, data, spec.options, expected_sha256=spec.expected_sha256)
    metrics.image_prepared(
        spec.provider.name, _preparation(prepared), time.perf_counter() - started
    )
    return prepared


def _preparation(prepared: Ready | JobRun) -> str:
    """The ``outcome`` label of an image's preparation: ok, invalid (refused) or error."""
    if isinstance(prepared, Ready):
        return "ok"
    return "invalid" if prepared.outcome is Outcome.INVALID_IMAGE else "error"


def limiter_key(provider: Provider) -> str:
    """The limiter key of ``provider``'s calls: vendor quotas are per credential."""
    return f"{provider.name}:{provider.credential_id()}"


async def call_job(
    provider: Provider,
    ready: Ready,
    limiter: Limiter,
    session: aiohttp.ClientSession,
    settings: Settings,
    *,
    journal: JournalPlace | None = None,
) -> JobRun:
    """Wait for the provider's shared slot, have the call written down in ``journal`` as
    the slot comes due, call the vendor once, map the answer."""
    request, facts = ready.request, ready.source
    key = limiter_key(provider)
    queued = time.perf_counter()
    async with limiter.in_flight(key, provider.settings.max_in_flight):
        try:
            slot = await limiter.acquire(
                key,
                rate_of(provider),
                max_wait=settings.limiter_max_wait_seconds,
                at_slot=None if journal is None else _journal_at_slot(journal),
            )
        except _NotRecorded as failed:  # not sent; a row still standing goes with the outcome
            if isinstance(failed.cause, CallNotRecorded):  # a billed call could go unseen
                log.warning("%s", failed.cause)
                return JobRun(give_back=JOURNAL_DOWN_RETRY_SECONDS, source=facts)
            error = unexpected(failed.cause, failed.stage, provider.name)
            return JobRun(error=error, source=facts)
        except LimiterBusy as busy:
            return JobRun(give_back=busy.wait, source=facts)
        except LimiterUnavailable as exc:
            # The shared limiter is down: no call may go out unpaced. Give the job back
            # (no attempt is charged); the dispatcher offers it again shortly.
            log.warning("%s", exc)
            return JobRun(give_back=LIMITER_DOWN_RETRY_SECONDS, source=facts)
        except Exception as exc:
            error = unexpected(exc, "waiting for the rate limiter", provider.name)
            return JobRun(error=error, source=facts)
        started = datetime.now(UTC)
        t0 = time.perf_counter()  # the call's duration is the vendor's alone
        metrics.limiter_waited(provider.name, t0 - queued)

        def facts_of(
            status: int | None, code: str | None, rid: str | None, billed: bool
        ) -> CallFacts:
            ms = (time.perf_counter() - t0) * 1000
            return CallFacts(started, ms, status, code, rid, billed)

        response: VendorResponse | None = None
        try:
            response = await http.send(
                session, request, provider=provider.name, timeout=provider.settings.timeout
            )
            answer = provider.parse_response(response)
        except JobError as exc:
            exc.provider = exc.provider or provider.name
            if exc.outcome is Outcome.RATE_LIMITED:
                await _penalize(limiter, key, slot, exc.retry_after)
            call = facts_of(exc.http_status, exc.vendor_code, exc.request_id, exc.billed)
            return JobRun(error=exc, call=call, source=facts)
        except Exception as exc:  # a bug must not wedge the job: retry, then fail
            stage = f"in {provider.name} adapter" if response else "sending the request"
            # The request may have left (and the vendor may bill): the attempt is recorded.
            made = facts_of(response.status if response else None, None, None, False)
            return JobRun(error=unexpected(exc, stage, provider.name), call=made, source=facts)
    call = facts_of(response.status, answer.vendor_code, answer.request_id, answer.billed)
    return JobRun(answer=answer, call=call, source=facts)


async def _penalize(limiter: Limiter, key: str, slot: Slot, retry_after: float | None) -> None:
    """Tell the limiter of a throttling answer; best effort, the answer counts either way."""
    try:
        await limiter.penalize(key, slot, retry_after=retry_after)
    except LimiterUnavailable:
        pass
    except Exception:
        log.exception("rate limiter failed to take a throttling answer for %s", key)
