"""A small sequential tar reader: regular-file members of a stream, with checked headers.

Python's ``tarfile`` spends most of the loader's time building TarInfo objects and, in stream mode,
treats a file cut at a header boundary as a clean end. This reader validates each header's checksum,
requires the end-of-archive block, handles ustar prefixes, pax ``path`` records and GNU long names,
and reports where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)


class TarStreamError(ValueError):
    """The stream is not a complete, well-formed tar; ``after`` is the last good member's name."""

    def __init__(self, message: str, after: str) -> None:
        super().__init__(message)
        self.after = after


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _octal(field: bytes) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    return int(text, 8) if text else 0


def _pax_path(data: bytes) -> str | None:
    path = None
    while data:
        length_text, _, rest = data.partition(b" ")
        length = int(length_text)
        record = data[len(length_text) + 1 : length - 1]
        data = data[length:]
        key, _, value = record.partition(b"=")
        if key == b"path":
            path = value.decode("utf-8")
        del rest
    return path


def _seekable(stream: BinaryIO) -> bool:
    """Local files are; webdataset's ``Pipe`` (curl for ``hf://``, ``pipe:``) has no ``seekable`` at all."""
    return bool(getattr(stream, "seekable", lambda: False)())


def _end(stream: BinaryIO) -> int:
    return os.fstat(stream.fileno()).st_size if hasattr(stream, "fileno") else stream.seek(0, 2)


def _skip(stream: BinaryIO, size: int) -> bool:
    """Move past ``size`` bytes (seek when the stream can); False if the stream ended first."""
    if _seekable(stream):
        stream.seek(size, 1)
        return True
    return len(_read_exact(stream, size)) == size


def iter_members(
    stream: BinaryIO, wanted: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each regular file, in order; members ``wanted`` rejects come back as
    ``(name, b"")`` without being read. Raises TarStreamError on damage or truncation."""
    last = "(start of file)"
    seekable = _seekable(stream)
    next_name: str | None = None
    while True:
        header = _read_exact(stream, BLOCK)
        if header == ZERO_BLOCK:
            return
        if len(header) < BLOCK:
            raise TarStreamError("truncated: no end-of-archive block", last)
        stored = _octal(header[148:156])
        computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
        if stored != computed:
            raise TarStreamError("bad header checksum", last)
        size = _octal(header[124:136])
        kind = header[156:157]
        name = header[:100].split(b"\0", 1)[0].decode("utf-8")
        if header[257:262] == b"ustar" and header[345:346] != b"\0":
            name = header[345:500].split(b"\0", 1)[0].decode("utf-8") + "/" + name
        padding = -size % BLOCK
        if kind in (b"0", b"\0", b"7") and wanted is not None and not wanted(next_name or name):
            if not _skip(stream, size + padding) or (seekable and stream.tell() > _end(stream)):
                raise TarStreamError(f"truncated inside member {next_name or name}", last)
            data = b""
        else:
            data = _read_exact(stream, size)
            if len(data) < size or len(_read_exact(stream, padding)) < padding:
                raise TarStreamError(f"truncated inside member {next_name or name}", last)
        if kind == b"x":
            next_name = _pax_path(data) or next_name
        elif kind == b"L":
            next_name = data.split(b"\0", 1)[0].decode("utf-8")
        elif kind in (b"0", b"\0", b"7"):
            last = next_name or name
            next_name = None
            yield last, data
        else:
            next_name = None
