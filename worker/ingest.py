"""Turning what a user submits (files, folders, CSV manifests, URLs) into one Source each.

Files are hashed and their headers probed here, so the database knows every image's
content sha256, size and dimensions before any job runs. URLs are only recorded: the
worker fetches them (with its SSRF guards) when their job runs.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urljoin

from worker import imaging
from worker.errors import ConfigError
from worker.sources import Source, SourceFacts

MANIFEST_COLUMNS = ("uri", "url", "path", "source", "file", "image")


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _other_scheme(source: str) -> str | None:
    """``ftp`` for ``ftp://...``: a URL vrec won't fetch (None for paths and http(s))."""
    scheme, sep, _ = source.partition("://")
    if sep and scheme.isalpha() and not is_url(source):
        return scheme.lower()
    return None


def _url_entry(source: str) -> Source:
    scheme = _other_scheme(source)
    if scheme is not None:
        return Source(uri=source, error=f"URL scheme {scheme!r} refused: only http and https")
    return Source(uri=source)


def entries(sources: Iterable[str]) -> Iterator[Source]:
    """Every image named by ``sources``, folders walked recursively in sorted order."""
    for source in sources:
        if is_url(source) or _other_scheme(source):
            yield _url_entry(source)
            continue
        path = Path(source)
        if path.is_dir():
            for file in _walk(path):
                yield file_entry(file)
        elif path.suffix.lower() == ".csv" and path.is_file():
            yield from _manifest(path)
        elif path.exists():
            yield file_entry(path)
        else:
            raise ConfigError(f"no such file, folder or URL: {source}")


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(root, name)


def _manifest(path: Path) -> Iterator[Source]:
    """A CSV with a header naming one of MANIFEST_COLUMNS (else: the first column)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for value in manifest_values(fh, str(path)):
            yield target_source(row_target(value, path.parent))


def manifest_values(fh: IO[str], name: str) -> Iterator[str]:
    """Each non-blank value of a CSV manifest's column: the first of MANIFEST_COLUMNS its
    header names, else its first column. ``name`` is how errors name the manifest."""
    reader = csv.DictReader(fh)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if not fields:
        raise ConfigError(f"{name}: empty manifest")
    column = next((c for c in MANIFEST_COLUMNS if c in fields), fields[0])
    original = (reader.fieldnames or [])[fields.index(column)]
    for row in reader:
        value = (row.get(original) or "").strip()
        if value:
            yield value


def row_target(value: str, base: Path | str) -> str:
    """What a manifest row names: a URL as written; a path resolved against the manifest's
    folder ``base`` (or, for a manifest fetched from the URL ``base``, against that URL)."""
    if is_url(value) or _other_scheme(value):
        return value
    if isinstance(base, str):
        return value if Path(value).is_absolute() else urljoin(base, value)
    file = Path(value)
    return str((file if file.is_absolute() else base / file).resolve())


def target_source(target: str) -> Source:
    """The Source of a path or URL: a URL recorded (the worker fetches it), a file hashed."""
    if is_url(target) or _other_scheme(target):
        return _url_entry(target)
    return file_entry(Path(target))


def file_entry(path: Path) -> Source:
    """Hash and probe one file; an unreadable file becomes an entry carrying its error."""
    uri = str(path.resolve())
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Source(uri=uri, error=f"cannot read file: {exc.strerror or exc}")
    return Source(uri=uri, facts=facts_of(data))


def facts_of(data: bytes) -> SourceFacts:
    """Content sha256, size and header facts (None for a format we don't accept): recorded
    at registration, and again when a job reads its source."""
    info = imaging.probe(data)
    return SourceFacts(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        width=info.width if info else None,
        height=info.height if info else None,
        format=info.format if info else None,
    )
