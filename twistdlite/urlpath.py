"""``URLPath``: an absolute URL to move about from, mirroring ``twisted.python.urlpath``.

    here = URLPath.fromString("http://example.com/docs/intro?lang=en")
    str(here.child(b"part 1"))     # 'http://example.com/docs/intro/part%201'
    str(here.sibling(b"faq"))      # 'http://example.com/docs/faq'
    str(here.here())               # 'http://example.com/docs/'
    str(here.parent())             # 'http://example.com/'
    str(here.click(b"../img/x"))   # 'http://example.com/img/x'

A web resource gets its own with ``request.URLPath()``. The parts
(``scheme``, ``netloc``, ``path``, ``query``, ``fragment``) are bytes (one set
as ``str`` is stored encoded), kept percent-encoded: characters a URL may not
hold are encoded, ``%XX`` sequences already there are left alone. ``child`` and ``sibling`` take one
path segment (a ``/`` in it is encoded), ``click`` a relative reference
resolved as a browser does (RFC 3986). The fragment is dropped by every move,
the query too unless ``keepQuery=True``.

Beyond Twisted: ``child``/``sibling``/``click`` also take ``str`` (encoded as
UTF-8), and a user's password in the netloc is kept.
"""

from __future__ import annotations

import re
from typing import Any, List, Union
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

__all__ = ["URLPath"]

_PARTS = frozenset(("scheme", "netloc", "path", "query", "fragment"))
_UNRESERVED = rb"A-Za-z0-9\-._~!$&'()*+,;=:@"
#: A percent-encoded byte (kept) or a byte that must be encoded, in a path segment, a path, a query or fragment.
_SEGMENT = re.compile(rb"%[0-9A-Fa-f]{2}|[^" + _UNRESERVED + rb"]")
_PATH = re.compile(rb"%[0-9A-Fa-f]{2}|[^" + _UNRESERVED + rb"/]")
_QUERY = re.compile(rb"%[0-9A-Fa-f]{2}|[^" + _UNRESERVED + rb"/?]")


def _encode(pattern: "re.Pattern[bytes]", data: bytes) -> bytes:
    def one(match: "re.Match[bytes]") -> bytes:
        found = match.group()
        return found if len(found) == 3 else b"%%%02X" % found[0]

    return pattern.sub(one, data)


def _as_bytes(value: Union[bytes, str], what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


class URLPath:
    """An absolute URL: ``URLPath(scheme, netloc, path, query, fragment)``, each bytes."""

    def __init__(self, scheme: bytes = b"", netloc: bytes = b"localhost", path: bytes = b"", query: bytes = b"",
                 fragment: bytes = b"") -> None:
        self.scheme = scheme or b"http"
        self.netloc = netloc
        self.path = path or b"/"
        self.query = query
        self.fragment = fragment

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PARTS and isinstance(value, str):  # (a part may be set as text; it is kept as bytes)
            value = value.encode("utf-8")
            if name != "scheme" and name != "netloc":
                value = _encode(_PATH if name == "path" else _QUERY, value)
        object.__setattr__(self, name, value)

    # -- making one -----------------------------------------------------------------------------
    @classmethod
    def fromBytes(cls, url: bytes) -> "URLPath":
        """The URLPath of ``url`` (bytes; ValueError for anything else)."""
        if not isinstance(url, bytes):
            raise ValueError("'url' must be bytes")
        parts = [part.encode("latin-1") for part in urlsplit(url.decode("latin-1"))]  # (bytes beyond ASCII too)
        scheme, netloc, path, query, fragment = parts
        return cls(scheme, netloc, _encode(_PATH, path), _encode(_QUERY, query), _encode(_QUERY, fragment))

    @classmethod
    def fromString(cls, url: str) -> "URLPath":
        """The URLPath of ``url`` (a str; characters beyond ASCII percent-encoded as UTF-8)."""
        if not isinstance(url, str):
            raise ValueError("'url' must be a str")
        return cls.fromBytes(url.encode("utf-8"))

    @classmethod
    def fromRequest(cls, request: Any) -> "URLPath":
        """The URL of the resource ``request`` has reached (its ``prePathURL()``)."""
        return cls.fromBytes(request.prePathURL())

    # -- reading it -----------------------------------------------------------------------------
    def pathList(self, unquote: bool = False, copy: bool = True) -> List[bytes]:
        """The path's segments (``[b"", b"docs", b"intro"]``), percent-decoded when ``unquote``."""
        segments = self.path.split(b"/")
        if unquote:
            return [unquote_to_bytes(segment) for segment in segments]
        return segments

    def _bytes(self) -> bytes:
        text = self.scheme + b"://" + self.netloc + self.path
        if self.query:
            text += b"?" + self.query
        if self.fragment:
            text += b"#" + self.fragment
        return text

    def __str__(self) -> str:
        return self._bytes().decode("ascii", "backslashreplace")

    def __repr__(self) -> str:
        return "URLPath(scheme=%r, netloc=%r, path=%r, query=%r, fragment=%r)" % (
            self.scheme, self.netloc, self.path, self.query, self.fragment)

    # -- moving about ---------------------------------------------------------------------------
    def _with_path(self, segments: List[bytes], keepQuery: bool) -> "URLPath":
        return type(self)(self.scheme, self.netloc, b"/".join(segments) or b"/",
                          self.query if keepQuery else b"")

    def child(self, path: Union[bytes, str], keepQuery: bool = False) -> "URLPath":
        """The URL of ``path`` (one segment) under this one: ``/a/b`` -> ``/a/b/path``."""
        segment = _encode(_SEGMENT, _as_bytes(path, "a path segment"))
        segments = self.pathList()
        if segments[-1] == b"":
            segments[-1] = segment
        else:
            segments.append(segment)
        return self._with_path(segments, keepQuery)

    def sibling(self, path: Union[bytes, str], keepQuery: bool = False) -> "URLPath":
        """The URL of ``path`` (one segment) beside this one: ``/a/b`` -> ``/a/path``."""
        segments = self.pathList()
        segments[-1] = _encode(_SEGMENT, _as_bytes(path, "a path segment"))
        return self._with_path(segments, keepQuery)

    def here(self, keepQuery: bool = False) -> "URLPath":
        """The directory this URL is in: ``/a/b`` -> ``/a/``, ``/a/b/`` -> ``/a/b/``."""
        segments = self.pathList()
        segments[-1] = b""
        return self._with_path(segments, keepQuery)

    def parent(self, keepQuery: bool = False) -> "URLPath":
        """The directory above :meth:`here`: ``/a/b`` -> ``/``, ``/a/b/`` -> ``/a/`` (``/`` stays ``/``)."""
        segments = self.pathList()
        return self._with_path((segments[:-2] if len(segments) > 2 else [b""]) + [b""], keepQuery)

    def click(self, st: Union[bytes, str]) -> "URLPath":
        """Where following the link ``st`` from this URL leads (resolved as RFC 3986 says)."""
        link, hash_, fragment = _as_bytes(st, "a link").partition(b"#")
        reference = _encode(_QUERY, link) + hash_ + _encode(_QUERY, fragment)
        return type(self).fromBytes(urljoin(self._bytes(), reference))
