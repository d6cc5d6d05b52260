"""Reading a local source file safely, at registration and again when its job runs.

- Only regular files are read. The file is opened without blocking (``O_NONBLOCK``) and
  checked on the open descriptor, so a FIFO in a folder, a device (``/dev/zero`` behind a
  symlink) or a socket is refused with what it is, never waited on or read forever.
- At most ``max_bytes`` are read (the same cap as URL sources, ``VREC_SOURCE_MAX_BYTES``):
  a file over it is refused with its size, not loaded.
- A path whose name is not valid UTF-8 (bytes from GBK, say) is stored as a ``file://``
  URI with those bytes percent-escaped (RFC 8089): text every database takes, and
  :func:`os_path` turns it back into the very bytes to open.

Failures are :class:`~worker.errors.InvalidImage` naming the reason.
"""

from __future__ import annotations

import os
import stat
from urllib.parse import quote_from_bytes, unquote_to_bytes

from worker.errors import InvalidImage

FILE_URI = "file://"
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def stored_path(path: str) -> str:
    """``path`` as items store it: itself if its name is UTF-8, else a ``file://`` URI."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode kept the undecodable bytes as surrogates
        return FILE_URI + quote_from_bytes(os.fsencode(path), safe="/")
    return path


def shown_name(path: str) -> str:
    """``path`` (or a name) for a message that is stored: bytes that are not UTF-8 shown
    as ``\\xNN``, so the text is valid everywhere."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def os_path(stored: str) -> str:
    """The path to open for a stored local source (the inverse of :func:`stored_path`)."""
    if stored.startswith(FILE_URI):
        return os.fsdecode(unquote_to_bytes(stored[len(FILE_URI) :]))
    return stored


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO", ...), None for a regular file."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def read_regular(path: str, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path`` (a stored path or URI), at most
    ``max_bytes``; InvalidImage for anything else."""
    try:
        fd = os.open(os_path(path), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise InvalidImage(f"cannot read file: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a NUL, or a character the file system's encoding lacks
        why = f"no file has such a name ({type(exc).__name__})"
        raise InvalidImage(f"cannot read file: {why}") from exc
    try:
        info = os.fstat(fd)
        kind = kind_of(info.st_mode)
        if kind is not None:
            raise InvalidImage(f"not a regular file ({kind}): only files are read")
        if info.st_size > max_bytes:
            raise InvalidImage(f"file is {info.st_size:,} bytes, over the {max_bytes:,}-byte limit")
        chunks, size = [], 0
        while size <= max_bytes and (chunk := os.read(fd, min(1 << 20, max_bytes + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:  # it grew while being read
            raise InvalidImage(f"file is over the {max_bytes:,}-byte limit")
        return b"".join(chunks)
    except OSError as exc:
        raise InvalidImage(f"cannot read file: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
