"""kombu's Redis transport, with one client per channel for its bookkeeping commands.

kombu's Redis channel builds a new ``redis.Redis`` client for every command it sends
outside the consumer's own (``conn_or_acquire``): the delivery's entry in the unacked
set, then its ack. Connections are pooled either way, but redis-py's client builds its
table of response callbacks anew each time, and that was a fifth of the CPU a worker
spent per message at one job per message. A ``redis.Redis`` over a pool is thread-safe
(each command takes its own connection), so this channel keeps one, rebuilt if kombu
replaces the pool (after a disconnect). Commands, keys and semantics are kombu's own.

Used for ``redis://`` and ``rediss://`` brokers (``broker_transport`` in
:func:`worker.app.celery_config`); any other broker keeps its transport.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kombu.transport import redis as kombu_redis

SCHEMES = ("redis://", "rediss://")
TRANSPORT = "worker.broker:Transport"


class Channel(kombu_redis.Channel):
    _kept: tuple[Any, Any] | None = None  # (the pool, a client over it)

    @contextlib.contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        kept = self._kept
        if kept is None or kept[0] is not pool:
            kept = self._kept = (pool, self._create_client())  # type: ignore[no-untyped-call]
        yield kept[1]


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(broker_url: str | None) -> str | None:
    """The ``broker_transport`` setting for ``broker_url``: this module's for Redis."""
    if broker_url and broker_url.startswith(SCHEMES):
        return TRANSPORT
    return None
