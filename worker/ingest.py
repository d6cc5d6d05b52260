"""Turning what a user submits (files, folders, CSV manifests, URLs) into one Source each.

Files are hashed and their headers probed here, so the database knows every image's
content sha256, size and dimensions before any job runs. URLs are only recorded: the
worker fetches them (with its SSRF guards) when their job runs.

What is read, and what is not (each refusal is a Source carrying its reason, so it is kept
as an item and shown with the batch; registration never stops for one bad entry):

- Only regular files, under the size cap (:mod:`worker.local_files`): a FIFO, a device or
  a socket is refused without blocking, a file over ``VREC_SOURCE_MAX_BYTES`` by its size.
- Links and manifest paths stay inside the roots given: a folder's files and symlinks must
  lead inside that folder, a manifest's paths inside the manifest's folder, unless
  ``VREC_SOURCE_ROOTS`` names more roots. A link or path leading elsewhere (``../../etc``)
  is refused with where it leads; a linked folder inside the walked folder is not walked
  twice, one leading outside is refused the same way. A link loop is an unreadable file.
- Paths are shown as found (a link's own path, not its target); a name that is not UTF-8
  is kept as a ``file://`` URI (:func:`worker.local_files.stored_path`).
- A URL carrying a credential (a password in it, a token in its query) is refused: sources
  are stored in SQL, and vrec stores no secret. Other schemes than http(s) are refused.
- Manifests: :mod:`worker.manifests` (encodings, headers; a manifest it cannot read is a
  one-line refusal of the run).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urljoin

from worker import imaging, manifests
from worker.config import Settings
from worker.errors import ConfigError, InvalidImage
from worker.fetch import is_http_url, redact_url, url_scheme
from worker.local_files import os_path, read_regular, shown_name, stored_path
from worker.sources import Source, SourceFacts

DEFAULT_MAX_BYTES = 20_000_000


@dataclass(frozen=True)
class Intake:
    """How sources are read: the size cap of a file, and the roots (beyond the folders and
    manifests given) that links and manifest paths may lead into."""

    max_bytes: int = DEFAULT_MAX_BYTES
    extra_roots: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Intake:
        roots = tuple(os.path.realpath(r) for r in settings.source_roots)
        return cls(max_bytes=settings.source_max_bytes, extra_roots=roots)


def is_url(source: str) -> bool:
    return is_http_url(source)


def entries(sources: Iterable[str], intake: Intake | None = None) -> Iterator[Source]:
    """Every image named by ``sources``, folders walked recursively in sorted order."""
    intake = intake or Intake()
    for source in sources:
        scheme = url_scheme(source)
        if scheme is not None and scheme != "file":
            yield url_entry(source)
            continue
        path = os_path(source)
        if not os.path.lexists(path):
            raise ConfigError(f"no such file, folder or URL: {source}")
        if os.path.isdir(path):
            yield from _folder(path, intake)
        elif path.lower().endswith(".csv") and os.path.isfile(path):
            yield from _manifest(Path(path), intake)
        else:
            yield file_entry(path, intake.max_bytes)  # named by the user: no root to keep


def stored_source(source: str) -> str:
    """A source as given, as a batch records it (``batches.sources``): a URL with its
    secrets masked (:func:`~worker.fetch.redact_url`), a path whose name is not UTF-8 as
    a ``file://`` URI, like its items."""
    scheme = url_scheme(source)
    if scheme is not None and scheme != "file":
        return redact_url(source)
    return stored_path(source)


def url_entry(source: str) -> Source:
    scheme = url_scheme(source)
    if not is_http_url(source):
        return Source(uri=source, error=f"URL scheme {scheme!r} refused: only http and https")
    shown = redact_url(source)
    if shown != source:
        return Source(
            uri=shown,
            error="URL carries a credential (a password or a token): vrec stores no secrets; "
            "serve the image without one, or submit the file",
        )
    return Source(uri=source)


def _within(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _folder(top: str, intake: Intake) -> Iterator[Source]:
    """The files under ``top``; links must lead inside it (or an extra root)."""
    root = os.path.realpath(top)
    roots = (root, *intake.extra_roots)
    walked = {root}
    pending = [os.path.abspath(top)]
    while pending:
        yield from _walk(pending.pop(0), roots, walked, pending, intake.max_bytes)


def _walk(
    top: str, roots: Sequence[str], walked: set[str], pending: list[str], max_bytes: int
) -> Iterator[Source]:
    for folder, dirs, files in os.walk(top):
        dirs.sort()
        for name in [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            dirs.remove(name)
            link = os.path.join(folder, name)
            target = os.path.realpath(link)
            if not _within(target, roots):
                yield _outside(link, target, "linked folder", roots[0])
            elif target not in walked and not _within(target, [roots[0]]):
                walked.add(target)  # an extra root, reached through a link: walk it once
                pending.append(link)
        for name in sorted(files):
            yield _folder_file(os.path.join(folder, name), roots, max_bytes)


def _folder_file(path: str, roots: Sequence[str], max_bytes: int) -> Source:
    if os.path.islink(path):
        target = os.path.realpath(path)
        if not _within(target, roots):
            return _outside(path, target, "link", roots[0])
    return file_entry(path, max_bytes)


def manifest_values(fh: IO[str], name: str) -> Iterator[str]:
    """Each source cell of a CSV manifest read from ``fh`` (see :mod:`worker.manifests`);
    ``name`` is how refusals name it."""
    for _, value in manifests.values(fh, name):
        yield value


def row_target(value: str, base: Path | str) -> str:
    """What a manifest row names: a URL as written; a path resolved against the manifest's
    folder ``base`` (or, for a manifest fetched from the URL ``base``, against that URL)."""
    if url_scheme(value) not in (None, "file"):
        return value
    if isinstance(base, str):
        return value if os.path.isabs(os_path(value)) else urljoin(base, value)
    return os.path.normpath(os.path.join(base, os_path(value)))


def target_source(target: str, roots: Sequence[str], max_bytes: int = DEFAULT_MAX_BYTES) -> Source:
    """The Source of a path or URL a schedule found: a URL recorded (the worker fetches
    it), a file hashed, unless it leads outside ``roots`` (realpaths: its folder's or its
    manifest's, and the extra roots), as a link or manifest path of ``vrec run`` would."""
    scheme = url_scheme(target)
    if scheme is not None and scheme != "file":
        return url_entry(target)
    path = os_path(target)
    if not _within(os.path.realpath(path), roots):
        where = stored_path(roots[0]) if roots else "VREC_SOURCE_ROOTS"
        return Source(
            uri=stored_path(path),
            error=f"{stored_path(path)} leads outside {where}: not read "
            "(VREC_SOURCE_ROOTS can allow more roots)",
        )
    return file_entry(path, max_bytes)


def _outside(path: str, target: str, what: str, root: str) -> Source:
    return Source(
        uri=stored_path(path),
        error=f"{what} to {stored_path(target)}, outside {stored_path(root)}: not read "
        "(VREC_SOURCE_ROOTS can allow more roots)",
    )


def _manifest(path: Path, intake: Intake) -> Iterator[Source]:
    """The sources a CSV manifest lists; its paths must stay inside its folder (or an extra
    root): relative ones are read next to it."""
    folder = os.path.dirname(os.path.abspath(path))
    roots = (os.path.realpath(folder), *intake.extra_roots)
    for line, value in manifests.rows(path):
        if url_scheme(value) is not None and url_scheme(value) != "file":
            yield url_entry(value)
            continue
        candidate = os.path.normpath(os.path.join(folder, os_path(value)))
        target = os.path.realpath(candidate)
        if not _within(target, roots):
            yield Source(
                uri=stored_path(candidate),
                error=f"{shown_name(path.name)} line {line}: {value} is outside "
                f"{stored_path(folder)}: "
                "not read (VREC_SOURCE_ROOTS can allow more roots)",
            )
            continue
        yield file_entry(candidate, intake.max_bytes)


def file_entry(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Source:
    """Hash and probe one file; an unreadable one becomes an entry carrying its error."""
    uri = stored_path(os.path.abspath(path))
    try:
        data = read_regular(uri, max_bytes)
    except InvalidImage as exc:
        return Source(uri=uri, error=exc.message)
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
