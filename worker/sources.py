"""What was submitted: one :class:`Source` per file, URL or manifest row, and the facts of
its bytes (:class:`SourceFacts`) once read.

Registration (:mod:`worker.ingest`) reads local files, so their facts are known before any
job runs; a URL's bytes are first read by the worker that runs its job
(:mod:`worker.pipeline`), which reports the facts back for storage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFacts:
    """The submitted bytes: content sha256, size and, for an image we accept, its header."""

    sha256: str
    size: int
    width: int | None = None
    height: int | None = None
    format: str | None = None


@dataclass(frozen=True)
class Source:
    """One submitted item. ``facts``: its bytes, once read (None for a URL not yet fetched);
    ``error``: why it could not even be read (its jobs end ``invalid_image`` at once)."""

    uri: str
    facts: SourceFacts | None = None
    error: str | None = None
