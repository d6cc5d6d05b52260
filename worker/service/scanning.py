"""Scanning a schedule's sources for what is new since their last scan, as Sources.

For each source, the listing (a folder's files with size and mtime, none opened; a
manifest's rows) is compared with the source's stored state in the database
(:func:`models.schedules.compare`), and only what is new or changed is read, through
:mod:`worker.ingest` like any registration: an image file hashed and probed, a URL row
recorded for the worker to fetch. In a folder, a ``.csv`` file is a manifest: when new (or
changed) all its rows are registered, so a folder of manifests takes each new manifest once.
A manifest source (a path, or a URL fetched behind the SSRF guard) lists only rows no
earlier scan took.

Memory stays flat whatever the source's size: the listing streams into a temporary table,
and the entries to read come back a page at a time. A source that can't be read (a folder
gone or unreadable, a manifest missing, malformed or refused) raises
:class:`~worker.errors.SourceUnavailable`, before anything of it is registered.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import aiohttp
from sqlalchemy import Connection

from models.schedules import Comparison, Found, ScheduleSource, compare
from worker import ingest, manifests, scan
from worker.config import Settings
from worker.errors import JobError, SourceUnavailable, UsageError
from worker.fetch import redact_url
from worker.pipeline import fetch_source
from worker.sources import Source

Listing = Iterator[tuple[str, int | None, int | None]]


@dataclass
class ScanCounts:
    """What a run's scans saw, over all its sources."""

    seen: int = 0  # files listed (folders) and rows listed (manifests)
    new: int = 0  # not taken by an earlier scan
    changed: int = 0  # a folder's file whose size or mtime changed since
    skipped: int = 0  # unchanged, or a row taken before: not read
    gone: int = 0  # a folder's file taken before and no longer there
    read: int = 0  # files opened: images hashed, manifests parsed
    items: int = 0  # Sources handed on for registration

    def add(self, comparison: Comparison) -> None:
        self.seen += comparison.seen
        self.new += comparison.new
        self.changed += comparison.changed
        self.skipped += comparison.skipped
        self.gone += comparison.gone


@dataclass
class Scanner:
    """Scans one run's sources on ``conn`` (the run's transaction), counting as it goes."""

    conn: Connection
    settings: Settings
    globs: Sequence[str]
    now: datetime
    counts: ScanCounts = field(default_factory=ScanCounts)

    def new_entries(self, sources: Sequence[ScheduleSource]) -> Iterator[Source]:
        """The new and changed entries of every source, in order, as Sources to register;
        each source's state is brought up to date as its entries are taken."""
        for source in sources:
            yield from self._source(source)

    def _roots(self, source: ScheduleSource) -> tuple[str, ...]:
        """Where the files a source names may lie: under its folder, or its manifest's
        folder (a URL manifest: only the extra roots), or an extra root."""
        extra = ingest.Intake.of(self.settings).extra_roots
        if source.kind == "folder":
            return (os.path.realpath(source.uri), *extra)
        if source.kind == "manifest":
            return (os.path.realpath(os.path.dirname(os.path.abspath(source.uri))), *extra)
        return extra

    def _source(self, source: ScheduleSource) -> Iterator[Source]:
        folder = source.kind == "folder"
        roots = self._roots(source)
        listing = self._listing(source)
        with compare(self.conn, source.id, listing, folder=folder) as comparison:
            self.counts.add(comparison)
            for page in comparison.pages():
                taken: list[tuple[Found, str | None]] = []
                for found in page:
                    if folder and is_manifest(found.path):
                        yield from self._manifest_rows(found.path, roots)
                        taken.append((found, None))
                        continue
                    entry = self._take(found.path, roots)
                    taken.append((found, entry.facts.sha256 if entry.facts else None))
                    yield entry
                comparison.record(taken, self.now)

    def _take(self, target: str, roots: Sequence[str]) -> Source:
        """The Source of a new path or URL, read as any registration reads it."""
        entry = ingest.target_source(target, roots, self.settings.source_max_bytes)
        self.counts.items += 1
        if entry.facts is not None or entry.error is not None:
            self.counts.read += 1  # a file was opened (a URL is the worker's to fetch)
        return entry

    def _listing(self, source: ScheduleSource) -> Listing:
        if source.kind == "folder":
            return ((f.path, f.size, f.mtime_ns) for f in scan.walk(source.uri, self.globs))
        if source.kind == "manifest":
            return self._rows(source.uri)
        return self._rows_of_url(source.uri)

    def _rows(self, path: str) -> Listing:
        """A manifest file's rows, each as the path or URL it names."""
        try:
            with _open_manifest(path) as fh:
                self.counts.read += 1
                for target in _targets(fh, path, Path(path).parent):
                    yield (target, None, None)
        except OSError as exc:
            raise SourceUnavailable(
                f"cannot read manifest {path}: {exc.strerror or type(exc).__name__}"
            ) from exc

    def _rows_of_url(self, url: str) -> Listing:
        """A manifest fetched from ``url`` (the guard images have, and their size cap)."""
        shown = redact_url(url)
        try:
            body = asyncio.run(_fetch(url, self.settings))
            text = manifests.decode(body, shown)
        except JobError as exc:  # its message never shows the URL's secrets
            raise SourceUnavailable(f"cannot fetch manifest: {exc}") from exc
        except UsageError as exc:
            raise SourceUnavailable(str(exc)) from exc
        self.counts.read += 1
        for target in _targets(io.StringIO(text, newline=""), shown, url):
            yield (target, None, None)

    def _manifest_rows(self, path: str, roots: Sequence[str]) -> Iterator[Source]:
        """Every row of a manifest found in a folder, as Sources. One that can't be read
        becomes an item carrying the reason (the batch goes on); rows before the fault in
        a malformed one are kept."""
        try:
            with _open_manifest(path) as fh:
                self.counts.read += 1
                for target in _targets(fh, path, Path(path).parent):
                    yield self._take(target, roots)
        except SourceUnavailable as exc:
            self.counts.items += 1
            yield Source(uri=path, error=str(exc))
        except OSError as exc:
            self.counts.items += 1
            reason = exc.strerror or type(exc).__name__
            yield Source(uri=path, error=f"cannot read manifest {path}: {reason}")


def _open_manifest(path: str) -> IO[str]:
    try:
        return manifests.open_manifest(path)
    except UsageError as exc:  # not text in any encoding a manifest comes in
        raise SourceUnavailable(str(exc)) from exc


def is_manifest(path: str) -> bool:
    return path.lower().endswith(".csv")


def _targets(fh: IO[str], name: str, base: Path | str) -> Iterator[str]:
    """The path or URL each row of a manifest names. A manifest that is not UTF-8 CSV with
    a header raises SourceUnavailable."""
    try:
        for value in ingest.manifest_values(fh, name):
            yield ingest.row_target(value, base)
    except UsageError as exc:  # empty, no source column, a row the csv module can't read
        raise SourceUnavailable(str(exc)) from exc


async def _fetch(url: str, settings: Settings) -> bytes:
    # No cookie jar and no proxies from the environment, as the workers' own session.
    async with aiohttp.ClientSession(
        trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        return await fetch_source(url, session, settings)
