"""Several byte ranges of a file: ``Range: bytes=0-1,5-6`` answered 206 ``multipart/byteranges``.

:class:`twistdlite.web.static.File` hands a ``Range`` header holding a comma
here (a single range stays on its own short path). The rules (RFC 9110 14.2
and 14.6):

* a malformed range spec, or a unit other than ``bytes``, makes the whole
  header ignored: the whole file, 200;
* ranges that start beyond the end are dropped; when none is left, 416 with
  ``Content-Range: bytes */SIZE``;
* **amplification**: more than ``limit`` ranges (``File.maxRanges``, 64) make
  the header ignored (the whole file, as nginx's ``max_ranges`` and Apache's
  ``MaxRanges`` do); ranges that overlap or touch are merged (sorted by start),
  so an answer never holds a byte twice and is at most the file plus the
  parts' headers;
* what is left as a single range is answered as one (206 with
  ``Content-Range``), several as ``multipart/byteranges``: each part has its
  ``Content-Type`` and ``Content-Range``, in the order asked (when nothing was
  merged), and the ``Content-Length`` is exact.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, List, Optional, Tuple, Union

from twistdlite.web._sending import CHUNK_SIZE, ChunkSender, ShortSend

__all__ = ["parse_ranges", "multipart", "PartsSender"]

Span = Tuple[int, int]


def _parse_spec(spec: bytes, size: int) -> Union[None, str, Span]:
    """One range spec: ``(start, end)`` inclusive, "unsatisfiable", or None when malformed."""
    first, dash, last = spec.partition(b"-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or not first) or not (last.isdigit() or not last) or not (first or last):
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(int(last), size - 1) if last else size - 1


def parse_ranges(header: bytes, size: int, limit: int) -> Union[None, str, List[Span]]:
    """The ranges of ``header`` a file of ``size`` bytes can meet, merged where they overlap or touch.

    None: ignore the header (another unit, a malformed spec, no spec, more
    than ``limit`` specs); "unsatisfiable": none can be met (416).
    """
    unit, equals, specs = header.partition(b"=")
    if not equals or unit.strip().lower() != b"bytes":
        return None
    pieces = [piece for piece in (p.strip() for p in specs.split(b",")) if piece]  # (empty elements allowed)
    if not pieces or len(pieces) > limit:
        return None
    spans: List[Span] = []
    for piece in pieces:
        span = _parse_spec(piece, size)
        if span is None:
            return None
        if span != "unsatisfiable":
            spans.append(span)  # type: ignore[arg-type]
    if not spans:
        return "unsatisfiable"
    merged: List[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    # Nothing merged: the parts go in the order asked (RFC 9110 14.6 SHOULD).
    return spans if len(merged) == len(spans) else merged


def multipart(spans: List[Span], size: int, content_type: bytes) -> Tuple[bytes, List[Tuple[bytes, int, int]], bytes]:
    """``(boundary, [(part head, offset, length)...], closing delimiter)`` of a multipart/byteranges body."""
    boundary = secrets.token_hex(12).encode("ascii")  # 96 random bits: never found inside the file in practice
    parts = []
    for index, (start, end) in enumerate(spans):
        head = b"%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n" % (
            b"\r\n" if index else b"", boundary, content_type, start, end, size)
        parts.append((head, start, end - start + 1))
    return boundary, parts, b"\r\n--%s--\r\n" % boundary


class PartsSender(ChunkSender):
    """Streams the parts of a multipart/byteranges body from an open file descriptor, as the client reads.

    A part the file no longer holds (truncated while sent) is logged as a short
    send and the connection is closed: the announced ``Content-Length`` cannot
    be met.
    """

    def __init__(self, request: Any, fd: int, parts: List[Tuple[bytes, int, int]], closing: bytes,
                 name: str) -> None:
        super().__init__(request, name)
        self.fd: Optional[int] = fd
        self.parts = parts
        self.closing = closing
        self.index = 0  # the part being sent
        self.done = 0  # bytes of it sent

    def next_chunk(self) -> Optional[bytes]:
        """The next chunk of the current part (its head first), then the closing boundary, then None."""
        if self.index > len(self.parts):
            return None
        if self.index == len(self.parts):
            self.index += 1
            return self.closing
        head, offset, length = self.parts[self.index]
        want = min(CHUNK_SIZE, length - self.done)
        data = os.pread(self.fd, want, offset + self.done)
        if len(data) < want:
            raise ShortSend(f"{self.name} ended before byte {offset + length} of the range announced "
                            "(truncated while it was sent?)")
        if self.done == 0:
            data = head + data
        self.done += want
        if self.done == length:
            self.index += 1
            self.done = 0
        return data

    def release(self) -> None:
        """Close the file descriptor."""
        fd, self.fd = self.fd, None
        os.close(fd)
