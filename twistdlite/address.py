"""Address objects returned by ``transport.getPeer()`` / ``getHost()``."""

from __future__ import annotations

from typing import Any, Union

__all__ = ["IPv4Address", "IPv6Address", "UNIXAddress", "from_sockaddr"]


class _Address:
    """An immutable value with named fields: equal, hashable and picklable by value.

    Plain classes with ``__slots__`` rather than frozen dataclasses, whose
    creation at import costs every start-up a couple of milliseconds.
    """

    __slots__: tuple = ()
    _fields: tuple = ()
    _defaults: tuple = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes at most {len(fields)} arguments")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            values[name] = value
        required = len(fields) - len(self._defaults)
        for index, name in enumerate(fields):
            if name not in values:
                if index < required:
                    raise TypeError(f"{type(self).__name__}() missing required argument {name!r}")
                values[name] = self._defaults[index - required]
            object.__setattr__(self, name, values[name])

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"

    def __reduce__(self) -> tuple:
        return (type(self), self._values())


class IPv4Address(_Address):
    """An IPv4 socket address: ``type`` is ``'TCP'`` or ``'UDP'``."""

    __slots__ = ("type", "host", "port")
    _fields = __slots__
    type: str
    host: str
    port: int


class IPv6Address(_Address):
    """An IPv6 socket address: ``type`` is ``'TCP'`` or ``'UDP'``."""

    __slots__ = ("type", "host", "port", "flowInfo", "scopeID")
    _fields = __slots__
    _defaults = (0, 0)
    type: str
    host: str
    port: int
    flowInfo: int
    scopeID: Union[str, int]


class UNIXAddress(_Address):
    """A UNIX socket address (``name`` is the path, or None for an unbound peer)."""

    __slots__ = ("name",)
    _fields = __slots__
    name: Any


def from_sockaddr(kind: str, sockaddr: Any) -> Union[IPv4Address, IPv6Address, UNIXAddress]:
    """Turn a socket module address into an address object of transport ``kind``."""
    if isinstance(sockaddr, tuple):
        if len(sockaddr) == 4:
            return IPv6Address(kind, sockaddr[0], sockaddr[1], sockaddr[2], sockaddr[3])
        return IPv4Address(kind, sockaddr[0], sockaddr[1])
    if isinstance(sockaddr, bytes):
        sockaddr = sockaddr.decode("utf-8", "surrogateescape")
    return UNIXAddress(sockaddr or None)
