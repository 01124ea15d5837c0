"""A small sequential tar reader: regular-file members of a stream, with checked headers.

Python's ``tarfile`` spends most of the loader's time building TarInfo objects and, in stream mode,
treats a file cut at a header boundary as a clean end. This reader validates each header's checksum,
requires the end-of-archive block, handles ustar prefixes, pax ``path`` records and GNU long names,
and reports where it stopped.

Speed: a local file is memory-mapped and walked in one go (a skipped member is never touched); any
other stream (``curl`` for ``hf://``) is walked a 1 MiB window at a time. The walk trusts each header
only after the checksums of all headers walked so far are verified together (numpy), so nothing from a
damaged header is yielded, and an error found while walking is raised only if its header's checksum holds.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
CHUNK = 1 << 20
FILE_KINDS = (ord("0"), 0, ord("7"))
_HEADER = struct.Struct("100s24x12s20xB100x5s83xB")  # name, size, type flag, magic, first prefix byte
_OCTAL_WEIGHTS = 8 ** np.arange(5, -1, -1, dtype=np.uint32)


class TarStreamError(ValueError):
    """The stream is not a complete, well-formed tar; ``after`` is the last good member's name."""

    def __init__(self, message: str, after: str) -> None:
        super().__init__(message)
        self.after = after


class _Window:
    """The stream's bytes: the whole file when it can be mapped, else a window refilled from a pipe."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buf: bytes | mmap.mmap = b""
        self.pos = 0
        self.eof = False
        fd = _regular_fd(stream)
        if fd is not None and os.fstat(fd).st_size:
            self.buf = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            self.pos, self.eof = stream.tell(), True

    def refill(self, pos: int, need: int) -> bool:
        """Drop everything before ``pos`` (which may lie past the window: skipped unread), then read
        until ``need`` bytes from there are held or the stream ends. False if it ended before ``pos``."""
        if pos > len(self.buf):
            if not self._discard(pos - len(self.buf)):
                return False
            pos = len(self.buf)
        parts, have = [self.buf[pos:]], len(self.buf) - pos
        while True:
            more = self.stream.read(max(CHUNK, need - have))
            self.eof = not more
            parts.append(more)
            have += len(more)
            if self.eof or have >= need:
                break
        self.buf, self.pos = b"".join(parts), 0
        return True

    def _discard(self, size: int) -> bool:
        while size:
            got = len(self.stream.read(min(size, CHUNK)))
            if not got:
                self.eof = True
                return False
            size -= got
        return True

    def close(self) -> None:
        if isinstance(self.buf, mmap.mmap):
            self.buf.close()


def _regular_fd(stream: BinaryIO) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # webdataset's Pipe, in-memory streams
        return None
    return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None


def _octal(field: bytes) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    return int(text, 8) if text else 0


def _pax_path(data: bytes) -> str | None:
    path = None
    while data:
        length_text = data.partition(b" ")[0]
        length = int(length_text)
        key, _, value = data[len(length_text) + 1 : length - 1].partition(b"=")
        data = data[length:]
        if key == b"path":
            path = value.decode("utf-8")
    return path


def first_bad_checksum(buf: bytes | mmap.mmap, starts: list[int]) -> int | None:
    """Index in ``starts`` of the first header whose stored checksum is not the sum of its bytes (the
    checksum field counted as spaces), or None. Vectorised; the stored value's usual ``%06o\\0``
    spelling is compared in numpy, any other spelling parsed in Python."""
    if not starts:
        return None
    first = starts[0] % BLOCK  # every header starts a whole number of blocks after the first
    count = (len(buf) - first) // BLOCK
    blocks = np.frombuffer(buf, dtype=np.uint8, count=count * BLOCK, offset=first).reshape(count, BLOCK)
    blocks = blocks[(np.array(starts) - first) // BLOCK]
    field = blocks[:, 148:156]
    sums = (
        np.add.reduce(blocks, axis=1, dtype=np.uint32)
        - np.add.reduce(field, axis=1, dtype=np.uint32)
        + 8 * 32
    )
    digits = field[:, :6] - np.uint8(ord("0"))  # wraps below "0": anything but 0..7 fails the test
    stored = digits.astype(np.uint32) @ _OCTAL_WEIGHTS
    usual = (digits <= 7).all(axis=1) & ((field[:, 6] == 0) | (field[:, 6] == 32)) & (stored == sums)
    for row in np.flatnonzero(~usual).tolist():
        try:
            if _octal(bytes(field[row])) != sums[row]:
                return row
        except ValueError:
            return row
    return None


def iter_members(stream: BinaryIO, suffixes: tuple[str, ...] | None = None) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each regular file, in order; with ``suffixes``, members whose names end
    otherwise are skipped unread. Raises TarStreamError on damage or truncation."""
    for batch in iter_member_batches(stream, suffixes):
        yield from batch


def iter_member_batches(
    stream: BinaryIO, suffixes: tuple[str, ...] | None = None
) -> Iterator[list[tuple[str, bytes]]]:
    """As :func:`iter_members`, a list at a time (a whole local file, or what one window holds)."""
    window = _Window(stream)
    try:
        yield from _member_batches(window, suffixes)
    finally:
        window.close()


def member_spans(path: str | os.PathLike[str]) -> list[tuple[str, int, int]]:
    """``(name, data offset, size)`` of every regular-file member of a local tar file, headers checked as
    by :func:`iter_members` but no member's data read (the file is memory-mapped; only headers are touched).
    Raises TarStreamError on damage or truncation."""
    with open(path, "rb") as stream:
        window = _Window(stream)
        try:
            if not isinstance(window.buf, mmap.mmap):
                raise TarStreamError("truncated: no end-of-archive block", "(start of file)")
            return [span for _, spans in _member_spans(window, None) for span in spans]
        finally:
            window.close()


def _member_batches(window: _Window, suffixes: tuple[str, ...] | None) -> Iterator[list[tuple[str, bytes]]]:
    for buf, spans in _member_spans(window, suffixes):
        yield [(name, buf[data : data + size]) for name, data, size in spans]


def _member_spans(
    window: _Window, suffixes: tuple[str, ...] | None
) -> Iterator[tuple[bytes | mmap.mmap, list[tuple[str, int, int]]]]:
    """The walk: per window, the buffer and ``(name, data offset in it, size)`` of the members it holds
    (wanted ones only); the buffer is valid until the next step."""
    last = "(start of file)"
    next_name: str | None = None
    unpack_header = _HEADER.unpack_from
    while True:
        buf, pos, eof = window.buf, window.pos, window.eof
        end = len(buf)
        starts: list[int] = []  # headers walked; verified before anything they describe is yielded
        found: list[tuple[int, str, int, int]] = []  # (header number, name, data offset, size or -1: skip)
        error: Exception | None = None
        need, skipping, done = BLOCK, None, False
        while True:
            if pos + BLOCK > end:
                if eof:
                    error = TarStreamError("truncated: no end-of-archive block", "")
                break
            raw_name, size_field, kind, magic, prefixed = unpack_header(buf, pos)
            if raw_name[0] == 0 and buf[pos : pos + BLOCK] == ZERO_BLOCK:
                done = True
                break
            starts.append(pos)
            try:
                size = int(size_field.rstrip(b"\0 ") or b"0", 8)
                name = next_name or raw_name.partition(b"\0")[0].decode("utf-8")
                if prefixed and next_name is None and magic == b"ustar":
                    name = buf[pos + 345 : pos + 500].partition(b"\0")[0].decode("utf-8") + "/" + name
            except (ValueError, UnicodeDecodeError) as exc:
                error = exc
                break
            data, after = pos + BLOCK, pos + BLOCK + size + (-size % BLOCK)
            keep = kind not in FILE_KINDS or suffixes is None or name.endswith(suffixes)
            if after > end:  # the member runs past the window (or the file)
                if eof:
                    error = TarStreamError(f"truncated inside member {name}", "")
                elif keep:  # walk this header again once the window holds all of it
                    need = after - starts.pop()
                else:
                    skipping, pos, next_name = name, after, None
                break
            pos = after
            if kind in FILE_KINDS:
                next_name = None
                found.append((len(starts), name, data, size if keep else -1))
                continue
            try:  # pax / GNU long-name records name the next member; other kinds are skipped
                if kind == ord("x"):
                    next_name = _pax_path(buf[data : data + size]) or next_name
                elif kind == ord("L"):
                    next_name = buf[data : data + size].split(b"\0", 1)[0].decode("utf-8")
                else:
                    next_name = None
            except (ValueError, UnicodeDecodeError) as exc:
                error = exc
                break
        bad = first_bad_checksum(buf, starts)
        good = found if bad is None else [f for f in found if f[0] <= bad]
        if good:
            last = good[-1][1]
            yield buf, [(name, data, size) for _, name, data, size in good if size >= 0]
        if bad is not None:
            raise TarStreamError("bad header checksum", last)
        if error is not None:
            raise TarStreamError(str(error), last) if isinstance(error, TarStreamError) else error
        if done:
            return
        if not window.refill(pos, need):
            raise TarStreamError(f"truncated inside member {skipping}", last)
        last = skipping or last
