"""The whole error tree of vrec. Retry policy reads attributes, never lists of types.

::

    VrecError                       base; never raised itself
    ├── UsageError                  what was asked can't be done as asked (exit code 2)
    │   ├── ConfigError             settings missing or wrong (no credentials, unknown provider)
    │   │   ├── SettingsInvalid     a VREC_ variable that does not parse (named, with expectation)
    │   │   ├── SchemaNotReady      the database has no vrec tables, or older ones
    │   │   └── Unreachable         the database, broker or Redis does not answer
    │   ├── NotFound                an unknown batch, schedule, status or vendor code
    │   ├── BadQuery                a SQL query refused, or failed (the database's message)
    │   └── SourceUnavailable       a schedule's folder or manifest can't be read (gone,
    │                               unreadable, fetch refused): its run fails, recorded
    ├── BrokerUnavailable           the broker did not take a message: its jobs stay pending
    ├── LimiterBusy                 the rate limiter would make us wait too long: give the job back
    ├── LimiterUnavailable          the shared limiter (Redis) can't be reached: give the job back
    ├── CallNotRecorded             a call could not be written down before sending: not sent
    └── JobError                    one job failed; carries outcome/retryable/context
        ├── InvalidImage            outcome invalid_image: input can't be made acceptable (terminal)
        │   └── UnsafeSource        a URL refused (scheme, host, address, size, redirects)
        ├── VendorRejectedImage     outcome invalid_image, said by the vendor (decode failure, size)
        ├── RateLimited             outcome rate_limited: the vendor throttled us (retry, slow down)
        ├── Transient               outcome transient: retry with capped backoff
        │   ├── VendorTimeout       no answer within the provider's timeout
        │   ├── ConnectionFailed    refused, reset, DNS failure, TLS failure
        │   ├── ServerError         HTTP 5xx or a vendor "internal error" / maintenance code
        │   └── BadResponse         an answer we can't parse (not JSON, wrong shape)
        └── ProviderUnavailable     outcome provider_unavailable: credentials/account wrong;
            │                       open the provider's circuit, keep its jobs pending
            └── NotConfigured       no credentials on this worker: jobs wait, no circuit

Every :class:`JobError` carries ``provider``, ``job_id``, ``vendor_code``, ``http_status``,
``request_id``, ``retry_after`` and ``billed`` so the task that records it, and the
retry policy, read facts instead of matching types.

Library errors are translated into this tree at named boundaries only, always
``raise ... from exc``:

* :mod:`worker.http`: aiohttp and asyncio errors of a vendor call;
* :mod:`worker.fetch`: aiohttp, DNS and socket errors of fetching a URL source (and
  anything unexpected there, as :class:`InvalidImage` naming its type);
* :mod:`worker.ratelimit.shared`: Redis and socket errors of the shared limiter;
* :mod:`worker.imaging.sniff`: Pillow's decode errors (as :class:`InvalidImage`);
* :mod:`worker.settings`: pydantic's validation errors of the environment (as
  :class:`SettingsInvalid`);
* :mod:`worker.service.database`: SQLAlchemy's connection errors (as :class:`Unreachable`);
* :mod:`worker.dispatch`: kombu's and Redis's errors of sending to the broker;
* :mod:`worker.pipeline`: the last resort of a job: any other exception at a stage
  (reading or fetching the source, preparing, the limiter, the journal, sending, the
  adapter) ends that job's run as :class:`Transient` naming the stage and its type;
* :mod:`worker.cli.common`: the last resort of a command: any other error is one line
  naming its type (the traceback only with ``--debug`` or ``VREC_DEBUG=1``).
* :mod:`worker.scan`: OS errors of listing a schedule's folder (as :class:`SourceUnavailable`);
* :mod:`worker.cron`: croniter's and zoneinfo's errors (as :class:`ConfigError`);
* :mod:`worker.service.scanning`: OS, CSV and fetch errors of reading a schedule's manifest
  (as :class:`SourceUnavailable`).

Messages never contain secrets: adapters build them from vendor codes and messages.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Outcome(StrEnum):
    """What one vendor call (or one prepared image) came to. See design.md."""

    SUCCEEDED = "succeeded"
    NO_RESULT = "no_result"
    INVALID_IMAGE = "invalid_image"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    PROVIDER_UNAVAILABLE = "provider_unavailable"


class VrecError(Exception):
    """Base of every error vrec raises on purpose."""


class UsageError(VrecError):
    """What a person or producer asked for can't be done as asked; the message says why
    and, where there is one, the fix. Commands exit 2 for these."""


class ConfigError(UsageError):
    """Settings are missing or inconsistent (no credentials, unknown provider, bad option)."""


class NotFound(UsageError):
    """An id or name that names nothing: a batch, a schedule, a status or a vendor code."""


class BadQuery(UsageError):
    """A SQL query that vrec won't run (not one read-only SELECT, no ``image_id`` column)
    or that the database refused (its own message); nothing was created."""


class SettingsInvalid(ConfigError):
    """A setting from the environment that does not parse: the message names the variable,
    its value (never a credential's) and what it expects."""


class SourceUnavailable(UsageError):
    """A schedule's folder or manifest can't be read now (vanished, unreadable, a manifest
    URL refused or failing): the run fails with this reason and the next tick tries again."""


class SchemaNotReady(ConfigError):
    """The database is not at this vrec's schema: the message names the fix."""


class Unreachable(ConfigError):
    """A service vrec needs (the database, the broker, the limiter's Redis) does not
    answer; the message names it (address without credentials) and what to check."""


class BrokerUnavailable(VrecError):
    """The broker did not take a message (down, restarting, unreachable). The jobs it would
    have carried are pending again; whoever dispatches reports it once and retries."""


class LimiterBusy(VrecError):
    """The shared limiter's next slot is further away than the caller may wait."""

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"rate limiter for {key} busy: next slot in {wait:.1f}s")
        self.key = key
        self.wait = wait


class LimiterUnavailable(VrecError):
    """The shared limiter's store did not answer (Redis down, refused, timed out).

    No call may go out unpaced, so the caller gives the job back without charging it.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"rate limiter for {key} unavailable: {reason}")
        self.key = key
        self.reason = reason


class CallNotRecorded(VrecError):
    """The attempt row a vendor call needs before it is sent could not be written (the
    database did not answer). The call is not made; the job goes back, uncharged."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider} call not sent: its attempt could not be recorded: {reason}")
        self.provider = provider
        self.reason = reason


class JobError(VrecError):
    """A job-level failure with its context. Subclasses fix ``outcome`` and ``retryable``."""

    outcome: ClassVar[Outcome] = Outcome.TRANSIENT
    retryable: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        job_id: int | None = None,
        vendor_code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        billed: bool = False,
        raw: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.job_id = job_id
        self.vendor_code = vendor_code
        self.http_status = http_status
        self.request_id = request_id
        self.retry_after = retry_after
        self.billed = billed
        self.raw = raw  # the vendor's decoded answer, secrets stripped, if there was one

    @property
    def category(self) -> str:
        """What the job's ``last_error_category`` records: the outcome's name."""
        return self.outcome.value

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        code = f" [{self.vendor_code}]" if self.vendor_code else ""
        return f"{where}{self.message}{code}"


class InvalidImage(JobError):
    outcome = Outcome.INVALID_IMAGE
    retryable = False


class UnsafeSource(InvalidImage): ...


class VendorRejectedImage(InvalidImage): ...


class RateLimited(JobError):
    outcome = Outcome.RATE_LIMITED


class Transient(JobError): ...


class VendorTimeout(Transient): ...


class ConnectionFailed(Transient): ...


class ServerError(Transient): ...


class BadResponse(Transient): ...


class ProviderUnavailable(JobError):
    outcome = Outcome.PROVIDER_UNAVAILABLE
    retryable = False
    # The vendor refused our credentials or account: stop calling (and paying) it.
    opens_circuit: ClassVar[bool] = True


class NotConfigured(ProviderUnavailable):
    """This worker has no credentials for the provider: a configuration error, not the
    vendor's verdict, so no circuit opens; the jobs wait (and say why) until it is set."""

    opens_circuit = False
