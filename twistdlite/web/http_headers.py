"""``Headers``: a case-insensitive multi-map of HTTP header fields, mirroring ``twisted.web.http_headers``."""

from __future__ import annotations

import re
from typing import Any, AnyStr, Iterator, Optional, Sequence, Union

__all__ = ["Headers"]

_Name = Union[str, bytes]


def _bytes(value: _Name) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8")


_SPECIAL = {b"etag": b"ETag", b"www-authenticate": b"WWW-Authenticate", b"content-md5": b"Content-MD5",
            b"te": b"TE", b"dnt": b"DNT", b"x-xss-protection": b"X-XSS-Protection"}


def _canonical(name: bytes) -> bytes:
    """``content-type`` -> ``Content-Type`` (a name given in lower case is sent capitalised, as Twisted does)."""
    if not name.islower():
        return name
    special = _SPECIAL.get(name)
    if special is not None:
        return special
    return b"-".join(part[:1].upper() + part[1:] for part in name.split(b"-"))


_BAD_VALUE = re.compile(rb"[\r\n\0]").search
_BAD_NAME = re.compile(rb"[\0- :\x7f-\xff()<>@,;\\\"/\[\]?={}]").search
#: name as given -> (lower-case name, name as sent): names are checked and capitalised once.
_names: dict = {}


def _check_value(value: bytes) -> bytes:
    if _BAD_VALUE(value) is not None:
        raise ValueError(f"header value {value!r} contains a line break or NUL")
    return value


def _name(name: Any) -> tuple:
    """``(lower, canonical)`` of a header name (bytes or str), checked once and remembered."""
    known = _names.get(name)
    if known is not None:
        return known
    raw = _bytes(name)
    if not raw or _BAD_NAME(raw) is not None:
        raise ValueError(f"invalid header name {name!r}")
    known = (raw.lower(), _canonical(raw))
    if len(_names) < 4096:
        _names[name] = known
    return known


class Headers:
    """Header fields by name, case-insensitively: ``Headers({b"Content-Type": [b"text/plain"]})``.

    Names and values may be given as ``str`` (UTF-8) or ``bytes``; a value is
    returned as ``str`` when its name was asked for as ``str``, as Twisted does.
    A value containing CR, LF or NUL is refused (``ValueError``): no header
    injection through a value.
    """

    __slots__ = ("_fields",)

    def __init__(self, rawHeaders: Optional[dict] = None) -> None:
        #: lower-case name -> [name as first given, [values]]
        self._fields: dict = {}
        if rawHeaders:
            for name, values in rawHeaders.items():
                self.setRawHeaders(name, values)

    def __repr__(self) -> str:
        return f"Headers({ {name: values for name, values in self.getAllRawHeaders()}!r})"

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return ({k: v[1] for k, v in self._fields.items()} == {k: v[1] for k, v in other._fields.items()})

    def _add(self, name: bytes, value: bytes) -> None:
        """Add a field parsed off the wire (already bytes, already checked by the parser)."""
        entry = self._fields.get(name.lower())
        if entry is None:
            self._fields[name.lower()] = [name, [value]]
        else:
            entry[1].append(value)

    def hasHeader(self, name: _Name) -> bool:
        """True when there is a field ``name``."""
        return _bytes(name).lower() in self._fields

    def removeHeader(self, name: _Name) -> None:
        """Remove every field ``name`` (no error when there is none)."""
        self._fields.pop(_bytes(name).lower(), None)

    def setRawHeaders(self, name: _Name, values: Sequence[AnyStr]) -> None:
        """Replace the values of ``name`` with ``values`` (a list)."""
        if isinstance(values, (str, bytes)):
            raise TypeError(f"values of header {name!r} must be a list, not {type(values).__name__}")
        lower, canonical = _name(name)
        self._fields[lower] = [canonical, [_check_value(v if isinstance(v, bytes) else _bytes(v)) for v in values]]

    def _set(self, name: Any, value: Any) -> None:
        """Set one value (the server's fast path for ``setHeader``)."""
        lower, canonical = _name(name)
        if not isinstance(value, bytes):
            value = _bytes(value)
        if _BAD_VALUE(value) is not None:
            raise ValueError(f"header value {value!r} contains a line break or NUL")
        self._fields[lower] = [canonical, [value]]

    def addRawHeader(self, name: _Name, value: AnyStr) -> None:
        """Add ``value`` to the values of ``name``."""
        entry = self._fields.get(_name(name)[0])
        if entry is None:
            self.setRawHeaders(name, [value])
        else:
            entry[1].append(_check_value(_bytes(value)))

    def getRawHeaders(self, name: _Name, default: Any = None) -> Any:
        """The values of ``name`` (a list; ``str`` values for a ``str`` name), or ``default``."""
        entry = self._fields.get(_bytes(name).lower())
        if entry is None:
            return default
        if isinstance(name, str):
            return [v.decode("utf-8", "replace") for v in entry[1]]
        return list(entry[1])

    def getAllRawHeaders(self) -> Iterator[tuple]:
        """``(name, [values])`` for each field, names and values as bytes."""
        for name, values in self._fields.values():
            yield name, list(values)

    def copy(self) -> "Headers":
        """An independent copy."""
        other = Headers()
        other._fields = {k: [v[0], list(v[1])] for k, v in self._fields.items()}
        return other

    def _first(self, lower: bytes) -> Optional[bytes]:
        """The first value of an already lower-cased bytes name, or None (fast path for the server)."""
        entry = self._fields.get(lower)
        return entry[1][0] if entry is not None else None

    def _last(self, lower: bytes) -> Optional[bytes]:
        entry = self._fields.get(lower)
        return entry[1][-1] if entry is not None else None
