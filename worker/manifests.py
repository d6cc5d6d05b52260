"""Reading CSV manifests: which column holds the sources, in whatever encoding they come.

- Encoding: a byte-order mark (UTF-8, UTF-16) decides; otherwise UTF-8, else GB18030 (a
  superset of GBK, what Chinese office software writes), else the manifest is refused.
  NUL characters are dropped (they are never part of a path or URL).
- The column: the first header named one of :data:`COLUMNS` (any case); else the first
  column, if its values look like paths or URLs. A manifest whose first row already looks
  like a source has no header: that row is kept. A header with no such column over a first
  column that holds no paths or URLs is refused, naming the header found.
- A row the csv module cannot read (a field over its limit, broken quoting), or a line
  that is not text in the encoding found (a GBK line deep in a UTF-8 file), refuses the
  manifest with its line number.

Refusals are :class:`~worker.errors.ConfigError` (one line, ``vrec run`` exits 2); rows
are streamed, so a million-row manifest costs no more memory than a short one.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from worker.errors import ConfigError
from worker.fetch import url_scheme

COLUMNS = ("uri", "url", "path", "source", "file", "image")
SAMPLE = 64 * 1024
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif", ".jfif"}
)


def looks_like_source(value: str) -> bool:
    """Whether a cell reads as a path or URL rather than a column name or a number."""
    text = value.strip()
    if not text:
        return False
    if url_scheme(text) is not None:
        return True
    return "/" in text or "\\" in text or Path(text).suffix.lower() in IMAGE_SUFFIXES


def encoding_of(sample: bytes) -> str:
    """The manifest's encoding, from its first bytes (see the module docstring)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for candidate in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(candidate)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return candidate
    raise UnicodeDecodeError("manifest", sample[:1], 0, 1, "not UTF-8, UTF-16 or GB18030")


# What ``errors="surrogateescape"`` makes of bytes the encoding has no character for.
_UNDECODED = re.compile("[\udc80-\udcff]")


def _clean_lines(lines: IO[str], name: str) -> Iterator[str]:
    """The lines without NUL characters (the csv module refuses them); a line holding
    bytes that are not text in the manifest's encoding refuses it, by its number."""
    for number, line in enumerate(lines, 1):
        if _UNDECODED.search(line):
            encoding = getattr(lines, "encoding", None) or "its"
            raise ConfigError(f"manifest {name}: line {number} is not {encoding} text")
        yield line.replace("\x00", "")


def open_manifest(path: str | Path) -> IO[str]:
    """The manifest at ``path`` opened as text in its encoding (see the module docstring);
    ConfigError when it is none of them. OSError as ``open`` raises it."""
    with open(path, "rb") as raw:
        sample = raw.read(SAMPLE)
    try:
        encoding = encoding_of(sample)
    except UnicodeDecodeError:
        raise ConfigError(f"manifest {path}: not UTF-8, UTF-16 or GB18030 text") from None
    # Undecodable bytes become lone surrogates, refused with their line's number by
    # values(): a strict decoder fails a whole chunk ahead of the line being read.
    return open(path, encoding=encoding, errors="surrogateescape", newline="")


def decode(body: bytes, name: str) -> str:
    """A manifest's bytes (fetched from a URL) as text, in its encoding."""
    try:
        return body.decode(encoding_of(body[:SAMPLE]))
    except UnicodeDecodeError:
        raise ConfigError(f"manifest {name}: not UTF-8, UTF-16 or GB18030 text") from None


def rows(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, source cell) of every non-empty source cell of the manifest."""
    with open_manifest(path) as fh:
        yield from values(fh, str(path))


def values(fh: IO[str], name: str) -> Iterator[tuple[int, str]]:
    """(line number, source cell) of every non-empty source cell of the manifest read from
    ``fh`` (text); ``name`` is how refusals name it."""
    reader = csv.reader(_clean_lines(fh, name))
    try:
        yield from _cells(name, reader)
    except csv.Error as exc:
        raise ConfigError(f"manifest {name}: line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError:  # bytes surrogateescape cannot carry: the chunk's line unknown
        encoding = getattr(fh, "encoding", None) or "its"
        raise ConfigError(
            f"manifest {name}: not {encoding} text, near line {reader.line_num + 1}"
        ) from None


def _cells(path: str, reader: Any) -> Iterator[tuple[int, str]]:
    header = next(reader, None)
    while header is not None and not any(cell.strip() for cell in header):
        header = next(reader, None)  # blank lines before the header
    if header is None:
        raise ConfigError(f"manifest {path}: empty")
    names = [cell.strip().lower() for cell in header]
    column = next((names.index(c) for c in COLUMNS if c in names), None)
    if column is None and looks_like_source(header[0]):
        column = 0  # no header: the first row is a source already
        yield reader.line_num, header[0].strip()
    elif column is None:
        first = next(reader, None)
        if not first or not looks_like_source(first[0]):
            shown = ", ".join(repr(cell.strip()) for cell in header[:8])
            raise ConfigError(
                f"manifest {path}: no uri, path or url column (header: {shown}) "
                "and its first column holds no paths or URLs"
            )
        column = 0
        yield reader.line_num, first[0].strip()
    for row in reader:
        value = row[column].strip() if len(row) > column else ""
        if value:
            yield reader.line_num, value
