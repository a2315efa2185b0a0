"""Address objects returned by ``transport.getPeer()`` / ``getHost()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

__all__ = ["IPv4Address", "IPv6Address", "UNIXAddress", "from_sockaddr"]


@dataclass(frozen=True)
class IPv4Address:
    """An IPv4 socket address: ``type`` is ``'TCP'`` or ``'UDP'``."""

    type: str
    host: str
    port: int


@dataclass(frozen=True)
class IPv6Address:
    """An IPv6 socket address: ``type`` is ``'TCP'`` or ``'UDP'``."""

    type: str
    host: str
    port: int
    flowInfo: int = 0
    scopeID: Union[str, int] = 0


@dataclass(frozen=True)
class UNIXAddress:
    """A UNIX socket address (``name`` is the path, or None for an unbound peer)."""

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
