"""Listing a schedule's folder: every file under it with its size and modification time,
none of them opened.

A re-scan compares these facts with what the last scan stored and reads only the files
whose facts changed, so listing is all a re-scan of an unchanged folder costs: one
``scandir`` per folder and one ``stat`` per file.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from worker.errors import SourceUnavailable


class Listed(NamedTuple):
    """One file found: its path (under the folder as given), size and mtime in ns."""

    path: str
    size: int
    mtime_ns: int


def matches(name: str, globs: Sequence[str]) -> bool:
    """Whether a file name matches any of ``globs`` (case-insensitively; none: all do)."""
    lowered = name.lower()
    return not globs or any(fnmatch.fnmatchcase(lowered, g.lower()) for g in globs)


def walk(folder: str, globs: Sequence[str] = ()) -> Iterator[Listed]:
    """Every file under ``folder``, recursively, in the order ``vrec run`` registers a
    folder (each folder's files by name, then its subfolders by name), that matches
    ``globs``.

    Left out: names starting with ``.`` (uploaders' partial files, such as rsync's
    ``.name.XXXXXX``, and system files), and anything not a regular file. Symlinked files
    are listed with their target's facts; symlinked folders are not followed (no loops).
    A folder that can't be listed raises :class:`SourceUnavailable`: a scan that skipped
    it would take its files for deleted; so does a name that is not UTF-8, which no
    database column holds. A file removed while listing is left out.
    """
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as found:
                entries = sorted(found, key=lambda e: e.name)
        except OSError as exc:
            raise SourceUnavailable(
                f"cannot read folder {current}: {exc.strerror or type(exc).__name__}"
            ) from exc
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            _check_name(entry)
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
                elif entry.is_file() and matches(entry.name, globs):
                    facts = entry.stat()
                    yield Listed(entry.path, facts.st_size, facts.st_mtime_ns)
            except FileNotFoundError:
                continue
        stack.extend(reversed(subfolders))


def _check_name(entry: os.DirEntry[str]) -> None:
    if entry.name.isascii():
        return
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = os.fsencode(entry.path)
        raise SourceUnavailable(f"a file name is not UTF-8: {raw!r}; rename it") from exc
