"""Static files: ``File(path)`` serves a file or a directory tree, mirroring ``twisted.web.static``.

    site = server.Site(static.File("/srv/www"))

* **Content types** by extension (:func:`loadMimeTypes`: the system's
  ``mime.types`` plus Python's table), ``defaultType`` for the rest;
  ``.gz``/``.bz2`` give a ``Content-Encoding``.
* **Directories**: ``/dir`` redirects to ``/dir/``; ``/dir/`` serves the first
  of ``indexNames`` that exists, else a listing (:class:`DirectoryLister`,
  built in a thread so a huge directory stalls no other client, and paged:
  ``listingPageSize`` entries a page, ``?page=N``).
* **Caching and partial content**: ``Last-Modified`` and ``ETag``, answered
  with 304 for ``If-None-Match``/``If-Modified-Since``; ``Range: bytes=...``
  on a GET gets 206 (416 when it cannot be met), several ranges as
  ``multipart/byteranges`` (overlapping ones merged, at most ``maxRanges``,
  64: see :mod:`twistdlite.web._byteranges`), ``If-Range`` honoured; ``HEAD``
  sends only the head, of the whole file (Range is for GET alone).
* **ignoredExts**: ``File(path, ignoredExts=[".html"])`` answers ``/page``
  with ``page.html``; ``"*"`` allows any extension.
* **Safety**: no request reaches outside the directory: ``..``, ``.``, a
  segment holding ``/`` (``%2F``) or NUL get 404, and a symbolic link whose
  target lies outside the served directory is refused (404, logged) unless
  ``allowSymlinksOut`` is true.

* **Small files kept in memory**: a file of up to 64 KiB, once read whole
  for a GET, is kept (``SMALL_CACHE_BYTES`` in all) and answered from memory
  while one stat of its path per request finds the same inode, size,
  modification and change times and mode (a rewrite, a rename over it, a
  touch or a chmod is seen on the next request). A file changed less than
  ``SETTLED`` seconds ago is read anew each time: a change within the same
  tick of the file system's clock could leave all of those unchanged. (On a
  network file system whose client caches attributes, a change shows when
  those cached attributes expire.)

A file larger than 64 KiB is sent by a producer, a chunk at a time as the
client reads. A file that turns out shorter than its size while it is sent
(truncated meanwhile) is logged as a short send and its connection closed.
"""

from __future__ import annotations

import asyncio
import errno
import html
import logging
import os
import stat
import time
from typing import Any, Optional
from urllib.parse import quote

from twistdlite.web import resource
from twistdlite.web._sending import CHUNK_SIZE, ChunkSender, ShortSend

__all__ = ["File", "DirectoryLister", "loadMimeTypes", "getTypeAndEncoding", "Data"]

log = logging.getLogger("twistdlite.web")

#: Files up to this size are read at once and sent in one write; larger ones are streamed.
SMALL_FILE = 65536

_mime_types: Optional[dict] = None
#: (O_NONBLOCK: opening a FIFO must not block the loop; it is then refused as not a regular file.)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def loadMimeTypes(mimetype_locations: Any = None) -> dict:
    """Extension (``".html"``) -> content type, from the system's ``mime.types`` files and Python's table."""
    global _mime_types
    if mimetype_locations is None and _mime_types is not None:
        return dict(_mime_types)
    import mimetypes

    db = mimetypes.MimeTypes(filenames=())
    for location in (mimetype_locations if mimetype_locations is not None else mimetypes.knownfiles):
        if os.path.isfile(location):
            try:
                db.read(location)
            except (OSError, UnicodeDecodeError):
                pass
    types = dict(db.types_map[True])
    types.update({".py": "text/plain", ".txt": "text/plain", ".md": "text/markdown", ".js": "text/javascript",
                  ".mjs": "text/javascript", ".json": "application/json", ".wasm": "application/wasm",
                  ".svg": "image/svg+xml", ".webp": "image/webp"})
    if mimetype_locations is None:
        _mime_types = types
    return dict(types)


#: What File._ranges returns once it has started sending a multipart/byteranges answer.
_SENT = object()

_ENCODINGS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".br": "br", ".zst": "zstd"}


def getTypeAndEncoding(filename: str, types: dict, encodings: dict, defaultType: str) -> tuple:
    """``(content type, content encoding or None)`` of ``filename`` by its extensions."""
    base, ext = os.path.splitext(filename)
    ext = ext.lower()
    encoding = encodings.get(ext)
    if encoding is not None:
        base, ext = os.path.splitext(base)
        ext = ext.lower()
    return types.get(ext, defaultType), encoding


class Data(resource.Resource):
    """Fixed bytes of a given content type: ``Data(b"hello", "text/plain")``."""

    isLeaf = True

    def __init__(self, data: bytes, type: str) -> None:
        super().__init__()
        self.data = data
        self.type = type

    def render_GET(self, request: Any) -> bytes:
        """The data."""
        request.setHeader(b"content-type", self.type)
        return self.data


_dates: dict = {}
#: (path, size, mtime, default type) -> (content types, encodings, what _file_headers works out for that version).
_file_headers: dict = {}


#: Small files' contents, by path, while they stay the same version (see :func:`_remember`).
_small_files: dict = {}
_small_bytes = [0]
#: The most the contents of :data:`_small_files` hold (bytes); past it the cache starts afresh.
SMALL_CACHE_BYTES = 16 << 20
#: A file changed this recently (seconds) is not cached: a change within the same tick of the
#: file system's clock would leave its times, and so the cached version's key, unchanged.
SETTLED = 2.0


class _Cached:
    """A small file's content and response headers, valid while a stat of its path gives ``key``."""

    __slots__ = ("key", "types", "defaultType", "encodings", "headers", "data")

    def __init__(self, key: tuple, types: Any, defaultType: str, encodings: Any, headers: tuple,
                 data: bytes) -> None:
        self.key = key
        self.types = types
        self.defaultType = defaultType
        self.encodings = encodings
        self.headers = headers
        self.data = data


def _cacheable(info: os.stat_result) -> bool:
    """True when the file's last change (its ctime, which no one can set back) is safely past."""
    return time.time() - info.st_ctime > SETTLED


def _forget(path: str) -> None:
    """Drop what :func:`_remember` kept of ``path``."""
    previous = _small_files.pop(path, None)
    if previous is not None:
        _small_bytes[0] -= len(previous.data)


def _remember(file: "File", info: os.stat_result, headers: tuple, data: bytes) -> None:
    """Keep ``data`` (the whole of ``file``) for the next requests, checked each time by one stat.

    The key holds the inode, device, size, modification and change times (nanoseconds) and mode:
    rewriting, replacing (rename), truncating, touching or chmodding the file changes it.
    """
    if _small_bytes[0] + len(data) > SMALL_CACHE_BYTES or len(_small_files) >= 4096:
        _small_files.clear()
        _small_bytes[0] = 0
    _forget(file.path)
    _small_files[file.path] = _Cached(
        (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode),
        file.contentTypes, file.defaultType, file.contentEncodings, headers, data)
    _small_bytes[0] += len(data)


def _http_date(when: float) -> bytes:
    """``when`` as an HTTP date (remembered: files' modification times repeat)."""
    when = int(when)
    text = _dates.get(when)
    if text is None:
        from email.utils import formatdate

        if len(_dates) > 4096:
            _dates.clear()
        text = _dates[when] = formatdate(when, usegmt=True).encode("ascii")
    return text


def _parse_http_date(value: bytes) -> Optional[int]:
    from email.utils import parsedate_to_datetime

    try:
        return int(parsedate_to_datetime(value.decode("latin-1").split(";")[0].strip()).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _parse_range(header: bytes, size: int) -> Any:
    """``(start, end)`` (inclusive) of a single byte range; None to ignore the header; "unsatisfiable"."""
    unit, _, spec = header.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None  # another unit, or several ranges: the whole file is the answer (RFC 9110 allows it)
    first, dash, last = spec.strip().partition(b"-")
    if not dash:
        return None
    try:
        if not first:
            suffix = int(last)
            if suffix < 0 or not last.strip().isdigit():
                return None
            if suffix == 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - suffix), size - 1
        if not first.strip().isdigit() or (last and not last.strip().isdigit()):
            return None
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        return None
    if end is not None and end < start:
        return None
    if start >= size:
        return "unsatisfiable"  # bytes=SIZE- or beyond: 416, as RFC 9110 and Twisted
    if end is None:
        end = size - 1
    return start, min(end, size - 1)


class _Descriptor:
    """An open file descriptor closed exactly once (unless taken over)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def take(self) -> int:
        fd, self.fd = self.fd, -1
        return fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class _FileSender(ChunkSender):
    """Streams part of an open file to a request, a chunk at a time while the client reads."""

    def __init__(self, request: Any, handle: Any, offset: int, length: int, name: str) -> None:
        super().__init__(request, name)
        self.handle = handle
        self.remaining = length
        self.length = length
        handle.seek(offset)

    def next_chunk(self) -> Optional[bytes]:
        """The next chunk of the span; None once it is all sent."""
        if self.remaining <= 0:
            return None
        data = self.handle.read(min(CHUNK_SIZE, self.remaining))
        if not data:
            raise ShortSend(f"{self.name} ended {self.remaining} bytes before the {self.length} announced "
                            "(truncated while it was sent?)")
        self.remaining -= len(data)
        return data

    def release(self) -> None:
        """Close the file."""
        handle, self.handle = self.handle, None
        handle.close()


class File(resource.Resource):
    """A file, or a directory whose tree is served: ``File(path, defaultType="text/html")``."""

    indexNames = ["index", "index.html", "index.htm"]
    #: Serve files behind symbolic links that lead outside the served directory.
    allowSymlinksOut = False
    #: Entries on one page of a directory listing.
    listingPageSize = 1000
    #: The most ranges one ``Range`` header may ask for; beyond, it is ignored (200, the whole file).
    maxRanges = 64
    contentEncodings = _ENCODINGS
    contentTypes: Optional[dict] = None
    _root: Optional[str] = None

    def __init__(self, path: Any, defaultType: str = "text/html", ignoredExts: Any = (),
                 registry: Any = None, allowExt: Any = 0) -> None:
        super().__init__()
        self.path = os.fsdecode(os.path.abspath(path))
        self.defaultType = defaultType
        if allowExt:
            ignoredExts = ["*"]
        self.ignoredExts = list(ignoredExts)
        self.registry = registry
        if type(self).contentTypes is None:
            type(self).contentTypes = loadMimeTypes()

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self.path!r}>"

    # -- Twisted's FilePath-like helpers --------------------------------------------------------
    def exists(self) -> bool:
        """True when the path exists."""
        return os.path.exists(self.path)

    def isdir(self) -> bool:
        """True when the path is a directory."""
        return os.path.isdir(self.path)

    def ignoreExt(self, ext: str) -> None:
        """Let ``/name`` find ``name<ext>`` (``"*"``: any extension)."""
        self.ignoredExts.append(ext)

    def root(self) -> str:
        """The real path of the served directory no request may leave."""
        if self._root is None:
            self._root = os.path.realpath(self.path)
        return self._root

    def createSimilarFile(self, path: str) -> "File":
        """A File for ``path`` with this one's settings (and its served directory)."""
        child = type(self)(path, self.defaultType, self.ignoredExts, self.registry)
        for name in ("indexNames", "allowSymlinksOut", "listingPageSize", "maxRanges", "contentTypes",
                     "contentEncodings"):
            if name in self.__dict__:
                setattr(child, name, self.__dict__[name])
        child._root = self.root()
        return child

    def _similar(self, path: str) -> "File":
        """:meth:`createSimilarFile`, without re-running ``__init__`` when a subclass does not override it."""
        cls = type(self)
        if cls.createSimilarFile is not File.createSimilarFile:
            return self.createSimilarFile(path)
        child = cls.__new__(cls)
        state = child.__dict__
        state.update(self.__dict__)
        state["path"] = path
        state["children"] = {}
        state["_root"] = self.root()
        state.pop("_unchecked", None)
        state.pop("_kids", None)
        return child

    def __setattr__(self, name: str, value: Any) -> None:
        # A setting changed: the children kept by getChild were made with the old one.
        object.__setattr__(self, name, value)
        self.__dict__.pop("_kids", None)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_kids", None)
        return state

    # -- finding children -----------------------------------------------------------------------
    def getChild(self, path: bytes, request: Any) -> resource.Resource:
        """The file ``path`` in this directory, an index file or listing for ``b""``, or 404."""
        state = self.__dict__
        kids = state.get("_kids")
        if kids is not None:
            child = kids.get(path)  # (only names that passed the checks below are kept)
            if child is not None and not self.ignoredExts and (
                    self.allowSymlinksOut or (request is not None and not request.postpath)):
                return child
        if path == b"":
            if not os.path.isdir(self.path):
                return resource.NoResource("File not found.")
            if request is not None and getattr(request, "postpath", None):
                return resource.NoResource("File not found.")  # an empty segment inside the path: //x
            for name in self.indexNames:
                child = self._child(name)
                if child is not None and os.path.isfile(child.path):
                    return child
            return DirectoryLister(self.path, self.contentTypes, self.contentEncodings, self.defaultType,
                                   self.listingPageSize, root=None if self.allowSymlinksOut else self.root())
        if path in (b".", b"..") or b"/" in path or b"\0" in path:
            return resource.NoResource("File not found.")
        if not self.ignoredExts and (self.allowSymlinksOut or (request is not None and not request.postpath)):
            # The last segment: whether it is a link out is found when it is opened (O_NOFOLLOW), which
            # saves an lstat per request; a missing file is a 404 then too. The child (which holds no
            # state of its own) is kept for the next requests for the same name.
            base = self.path
            name = os.fsdecode(path)
            child = self._similar(base + name if base.endswith(os.sep) else base + os.sep + name)
            child._unchecked = True
            if type(self).createSimilarFile is File.createSimilarFile:
                if kids is None:
                    kids = state["_kids"] = {}
                elif len(kids) >= 1024:
                    kids.clear()
                kids[path] = child
            return child
        name = os.fsdecode(path)
        child = self._child(name)
        if child is None and self.ignoredExts:
            child = self._child_without_ext(name)
        if child is None:
            return resource.NoResource("File not found.")
        return child

    def _child(self, name: str) -> Optional["File"]:
        """The File for ``name`` here, None when missing or a link out of the served directory."""
        full = os.path.join(self.path, name)
        try:
            mode = os.lstat(full).st_mode
        except (OSError, ValueError):
            return None
        if stat.S_ISLNK(mode) and not self.allowSymlinksOut and not self._inside(full):
            return None
        return self._similar(full)

    def _inside(self, link: str) -> bool:
        """True when the symbolic link ``link`` leads inside the served directory (logged when it does not)."""
        real = os.path.realpath(link)
        root = self.root()
        if _within(real, root):
            return True
        log.info("Refused %s: a symbolic link to %s, outside the served directory %s", link, real, root)
        return False

    def _child_without_ext(self, name: str) -> Optional["File"]:
        for ext in self.ignoredExts:
            if ext == "*":
                try:
                    candidates = sorted(n for n in os.listdir(self.path) if n.startswith(name + "."))
                except OSError:
                    candidates = []
                for candidate in candidates:
                    child = self._child(candidate)
                    if child is not None:
                        return child
            else:
                child = self._child(name + ext)
                if child is not None:
                    return child
        return None

    # -- rendering ------------------------------------------------------------------------------
    def render_GET(self, request: Any) -> Any:
        """The file (whole, a range, or 304), a redirect to ``dir/``, or an error page."""
        path = self.path
        unchecked = self.__dict__.get("_unchecked", False) and not self.allowSymlinksOut
        keep = True
        cached = _small_files.get(path)
        if cached is not None:
            # A small file served before: one stat says whether it is still the same version.
            try:
                info = os.lstat(path) if unchecked else os.stat(path)
            except (OSError, ValueError):
                info = None
            if (info is not None and cached.key == (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns,
                                                    info.st_ctime_ns, info.st_mode)
                    and cached.types is self.contentTypes and cached.defaultType == self.defaultType
                    and cached.encodings is self.contentEncodings):
                return self._answer(request, info.st_size, cached.headers, None, cached.data)
            _forget(path)
        try:
            try:
                fd = os.open(path, _OPEN_FLAGS | _NOFOLLOW if unchecked else _OPEN_FLAGS)
            except OSError as exc:
                if not unchecked or exc.errno not in (errno.ELOOP, errno.EMLINK):
                    raise
                # a symbolic link: served only if it leads inside
                if not self._inside(path):
                    return resource.NoResource("File not found.").render(request)
                fd = os.open(path, _OPEN_FLAGS)
                keep = False  # (its lstat, the one the next request makes, would never match its target's)
        except (FileNotFoundError, NotADirectoryError):
            return resource.NoResource("File not found.").render(request)
        except OSError:
            if os.path.isdir(path):
                return self._render_directory(request)
            return resource.ForbiddenResource().render(request)
        handed_over = False
        try:
            info = os.fstat(fd)
            mode = info.st_mode
            if not stat.S_ISREG(mode):
                if stat.S_ISDIR(mode):
                    return self._render_directory(request)
                return resource.ForbiddenResource().render(request)
            handed_over = True
            return self._render_file(request, fd, info, keep)
        finally:
            if not handed_over:
                os.close(fd)

    def render_HEAD(self, request: Any) -> Any:
        """As GET, without the body."""
        return self.render_GET(request)

    def _render_directory(self, request: Any) -> Any:
        if not request.path.endswith(b"/"):
            location = request.path + b"/" + ((b"?" + request.uri.partition(b"?")[2]) if b"?" in request.uri
                                               else b"")
            request.setResponseCode(301)
            request.setHeader(b"location", location)
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return b'<html><body><a href="%s">moved here</a></body></html>\n' % html.escape(
                location.decode("latin-1")).encode("latin-1")
        return self.getChild(b"", request).render(request)

    def _render_file(self, request: Any, fd: int, info: os.stat_result, keep: bool = True) -> Any:
        """Answer with the open file ``fd`` (closed here, or by the producer that sends it)."""
        owner = _Descriptor(fd)
        try:
            return self._answer_file(request, owner, info, keep)
        finally:
            if owner.fd >= 0:
                owner.close()

    def _file_headers(self, info: os.stat_result) -> tuple:
        """``(etag, modified, {lower name: (name, value)})`` of this file's version (remembered)."""
        key = (self.path, info.st_size, info.st_mtime_ns, self.defaultType)
        entry = _file_headers.get(key)
        # (the type maps are part of the key by identity: another File may serve the same path with its own)
        if entry is not None and entry[0] is self.contentTypes and entry[1] is self.contentEncodings:
            return entry[2]
        ctype, encoding = getTypeAndEncoding(os.path.basename(self.path), self.contentTypes or {},
                                             self.contentEncodings, self.defaultType)
        etag = b'"%x-%x"' % (info.st_size, info.st_mtime_ns)
        modified = int(info.st_mtime)
        ctype_bytes = ctype.encode("latin-1") if isinstance(ctype, str) else ctype
        if b"\r" in ctype_bytes or b"\n" in ctype_bytes or b"\0" in ctype_bytes:
            raise ValueError(f"content type {ctype!r} contains a line break or NUL")
        fields = {b"accept-ranges": (b"Accept-Ranges", b"bytes"),
                  b"last-modified": (b"Last-Modified", _http_date(modified)),
                  b"etag": (b"ETag", etag), b"content-type": (b"Content-Type", ctype_bytes)}
        if encoding:
            fields[b"content-encoding"] = (b"Content-Encoding", encoding.encode("ascii"))
        known = (etag, modified, fields)
        if len(_file_headers) > 4096:
            _file_headers.clear()
        _file_headers[key] = (self.contentTypes, self.contentEncodings, known)
        return known

    def _answer_file(self, request: Any, owner: "_Descriptor", info: os.stat_result, keep: bool = True) -> Any:
        size = info.st_size
        headers = self._file_headers(info)
        if keep and size <= SMALL_FILE and request.method == b"GET" and _cacheable(info):
            # Read the whole (small) file once: this answer, and the next ones while it stays the same.
            data = os.pread(owner.fd, size, 0)
            owner.close()
            if len(data) == size:
                _remember(self, info, headers, data)
                return self._answer(request, size, headers, None, data)
            log.warning("Short read: %s had %d bytes of the %d expected (changed while read?)",
                        self.path, len(data), size)
            size = len(data)
            return self._answer(request, size, headers, None, data)
        return self._answer(request, size, headers, owner, None)

    def _answer(self, request: Any, size: int, known: tuple, owner: Optional["_Descriptor"],
                whole: Optional[bytes]) -> Any:
        """Answer from the file's headers and either its open descriptor ``owner`` or its content ``whole``."""
        etag, modified, cached = known
        response_fields = request.responseHeaders._fields
        for lower, (name, value) in cached.items():
            response_fields[lower] = [name, [value]]
        headers = request.requestHeaders
        asked = headers._fields if headers is not None else {}
        if asked:
            match = asked[b"if-none-match"][1][0] if b"if-none-match" in asked else None
            if match is not None:
                tags = [tag.strip() for tag in match.split(b",")]
                if b"*" in tags or etag in tags or b"W/" + etag in tags:
                    return self._not_modified(request, owner)
            elif b"if-modified-since" in asked:
                when = _parse_http_date(asked[b"if-modified-since"][1][0])
                if when is not None and modified <= when:
                    return self._not_modified(request, owner)
        start, length = 0, size
        wanted = asked[b"range"][1][0] if b"range" in asked else None
        # (Range is for GET alone: a HEAD gets the whole file's head, as RFC 9110 14.2 and Twisted)
        if wanted is not None and request.method == b"GET" and self._range_applies(headers, etag, modified):
            if b"," in wanted:
                span = self._ranges(request, owner, wanted, size, cached, whole)
                if span is _SENT:
                    from twistdlite.web.server import NOT_DONE_YET

                    return NOT_DONE_YET
                if isinstance(span, bytes):
                    return span
            else:
                span = _parse_range(wanted, size)
            if span == "unsatisfiable":
                if owner is not None:
                    owner.close()
                request.setResponseCode(416)
                request.setHeader(b"Content-Range", b"bytes */%d" % size)
                request.setHeader(b"Content-Type", b"text/plain")
                return b"Requested range not satisfiable\n"
            if span is not None:
                start, end = span
                length = end - start + 1
                request.setResponseCode(206)
                request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (start, end, size))
        response_fields[b"content-length"] = [b"Content-Length", [b"%d" % length]]
        if request.method == b"HEAD":
            if owner is not None:
                owner.close()
            return b""
        if whole is not None:
            return whole if length == size else whole[start:start + length]
        if length <= SMALL_FILE:
            data = os.pread(owner.fd, length, start)
            owner.close()
            if len(data) != length:
                log.warning("Short read: %s had %d bytes of the %d expected (changed while read?)",
                            self.path, len(data), length)
                if request.code == 206:
                    request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (start, start + len(data) - 1,
                                                                             start + len(data)))
                request.setHeader(b"Content-Length", b"%d" % len(data))
            return data
        _FileSender(request, open(owner.take(), "rb"), start, length, self.path).start()
        from twistdlite.web.server import NOT_DONE_YET

        return NOT_DONE_YET

    def _ranges(self, request: Any, owner: Optional["_Descriptor"], wanted: bytes, size: int, cached: dict,
                whole: Optional[bytes] = None) -> Any:
        """Several ranges asked: _SENT (multipart/byteranges on its way) or the multipart body (from ``whole``,
        the file in memory), else a single span, None or "unsatisfiable"."""
        from twistdlite.web import _byteranges

        spans = _byteranges.parse_ranges(wanted, size, self.maxRanges)
        if not isinstance(spans, list):
            return spans
        if len(spans) == 1:
            return spans[0]
        if b"content-encoding" in cached:
            return None  # a multipart answer cannot say its parts are compressed: the whole file
        boundary, parts, closing = _byteranges.multipart(spans, size, cached[b"content-type"][1])
        request.setResponseCode(206)
        fields = request.responseHeaders._fields
        fields[b"content-type"] = [b"Content-Type", [b"multipart/byteranges; boundary=" + boundary]]
        length = sum(len(head) + part for head, _, part in parts) + len(closing)
        fields[b"content-length"] = [b"Content-Length", [b"%d" % length]]
        if whole is not None:
            return b"".join([head + whole[offset:offset + part] for head, offset, part in parts]) + closing
        _byteranges.PartsSender(request, owner.take(), parts, closing, self.path).start()
        return _SENT

    @staticmethod
    def _not_modified(request: Any, owner: Optional["_Descriptor"]) -> bytes:
        if owner is not None:
            owner.close()
        request.setResponseCode(304)
        return b""

    @staticmethod
    def _range_applies(headers: Any, etag: bytes, modified: int) -> bool:
        condition = headers._first(b"if-range")
        if condition is None:
            return True
        if condition.startswith(b'"') or condition.startswith(b"W/"):
            return condition.strip() == etag
        when = _parse_http_date(condition)
        return when is not None and when >= modified


def _within(real: str, root: str) -> bool:
    """True when the resolved path ``real`` is ``root`` or under it."""
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _listing_page(path: str, url_path: bytes, page: int, page_size: int, types: dict, encodings: dict,
                  default_type: str, root: Optional[str] = None) -> bytes:
    """The HTML of one page of ``path``'s listing (run in a thread: it reads the whole directory).

    With ``root``, a symbolic link leading outside it is left out (it is not served, and its
    target's size and kind are not shown).
    """
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise _ListingError(str(exc.strerror or exc)) from None
    pages = max(1, -(-len(names) // page_size))
    page = min(max(page, 1), pages)
    shown = names[(page - 1) * page_size: page * page_size]
    title = html.escape("Directory listing for " + url_path.decode("utf-8", "replace"))
    rows = []
    for name in shown:
        full = os.path.join(path, name)
        if root is not None and os.path.islink(full) and not _within(os.path.realpath(full), root):
            continue
        try:
            info = os.stat(full)
            is_dir = stat.S_ISDIR(info.st_mode)
            size = "" if is_dir else _size_text(info.st_size)
        except OSError:
            is_dir, size = False, ""
        label = name + ("/" if is_dir else "")
        kind = "[directory]" if is_dir else getTypeAndEncoding(name, types, encodings, default_type)[0]
        href = quote(os.fsencode(name)) + ("/" if is_dir else "")
        rows.append('<tr><td><a href="%s">%s</a></td><td>%s</td><td>%s</td></tr>'
                    % (html.escape(href), html.escape(label), size, html.escape(kind)))
    nav = ""
    if pages > 1:
        links = []
        if page > 1:
            links.append('<a href="?page=%d">previous</a>' % (page - 1))
        links.append("page %d of %d (%d entries)" % (page, pages, len(names)))
        if page < pages:
            links.append('<a href="?page=%d">next</a>' % (page + 1))
        nav = "<p>%s</p>\n" % " | ".join(links)
    text = ("<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>%s</title></head>\n<body>\n"
            "<h1>%s</h1>\n%s<table>\n<tr><th>Filename</th><th>Size</th><th>Content type</th></tr>\n%s\n"
            "</table>\n%s</body>\n</html>\n" % (title, title, nav, "\n".join(rows), nav))
    return text.encode("utf-8", "surrogateescape")


def _size_text(size: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size}{unit}" if unit == "B" else f"{size:.0f}{unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


class _ListingError(Exception):
    pass


class DirectoryLister(resource.Resource):
    """A directory's listing as an HTML page, built in a thread and paged (``?page=N``)."""

    isLeaf = True

    def __init__(self, pathname: str, contentTypes: Any = None, contentEncodings: Any = None,
                 defaultType: str = "text/html", pageSize: int = 1000, root: Optional[str] = None) -> None:
        super().__init__()
        self.path = pathname
        self.root = root  # links leading outside it are left out of the listing (None: all shown)
        self.contentTypes = contentTypes or {}
        self.contentEncodings = contentEncodings or _ENCODINGS
        self.defaultType = defaultType
        self.pageSize = pageSize

    async def render_GET(self, request: Any) -> bytes:
        """The listing (read in a thread, off the event loop)."""
        try:
            page = int(request.args.get(b"page", [b"1"])[0])
        except ValueError:
            page = 1
        loop = asyncio.get_event_loop()
        try:
            body = await loop.run_in_executor(None, _listing_page, self.path, request.path, page, self.pageSize,
                                              self.contentTypes, self.contentEncodings, self.defaultType,
                                              self.root)
        except _ListingError as exc:
            return resource.ForbiddenResource(f"The directory cannot be listed: {exc}").render(request)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return body

    def render_HEAD(self, request: Any) -> Any:
        """As GET, without the body."""
        return self.render_GET(request)
