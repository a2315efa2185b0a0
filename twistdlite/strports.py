"""Servers from endpoint strings, mirroring ``twisted.application.strports``.

``service('tcp:8080:interface=127.0.0.1', factory)`` returns the service that
serves ``factory`` there (a ``TCPServer``, ``UNIXServer``, ``SSLServer`` or,
for ``systemd:domain=INET:index=0``, an ``AdoptedStreamServer``, defined in
``twistdlite.internet`` with the other services and importable from here), which
binds in ``privilegedStartService`` like the others. ``listen(description,
factory)`` listens at once and returns the port. The syntax is described in
``twistdlite.endpoints``; a malformed string raises
``twistdlite.error.EndpointStringError`` (a ValueError) with the reason.
"""

from __future__ import annotations

from typing import Any

from twistdlite.internet import AdoptedStreamServer

__all__ = ["service", "listen", "AdoptedStreamServer"]


def service(description: str, factory: Any, reactor: Any = None) -> Any:
    """The service that serves ``factory`` at ``description`` (``reactor`` is accepted for porting)."""
    from twistdlite.endpoints import serverFromString

    return serverFromString(description)._service(factory)


def listen(description: str, factory: Any) -> Any:
    """Listen with ``factory`` at ``description`` now; returns the port (``getHost()``, ``stopListening()``)."""
    from twistdlite.endpoints import serverFromString

    return serverFromString(description)._make_port(factory).startListening()
