"""``Session``: a user's in-memory session on a ``Site``, as ``twisted.web.server.Session``.

``request.getSession()`` finds the session named by the request's session
cookie, or makes one (``site.makeSession()``) and sets the cookie. As
Twisted: the cookie is ``TWISTED_SESSION`` (``TWISTED_SECURE_SESSION``, with
``Secure``, over HTTPS), suffixed ``_segment`` for each segment of the site's
path, ``Path=/``, with no ``Expires``/``Max-Age`` (it lasts as long as the
browser's session); the uid is 64 random hexadecimal digits
(``os.urandom(32)``). Beyond Twisted's, it is ``HttpOnly``: a page's scripts
cannot read it.

A session expires ``sessionTimeout`` seconds (900) after it was last touched;
each ``request.getSession()`` that finds it touches it (Twisted touches it only
when ``touch()`` is called, or when the same request asks twice), so the
timeout is one of idleness. One timer per session, on the site's reactor
(``Site(..., reactor=task.Clock())`` in tests), is moved only when it falls due
before the session's idle time is up, so a busy session costs no timer work
per request. ``expire()`` (a log out) forgets the session and calls each
``notifyOnExpire`` callback once.

Memory stays bounded (beyond Twisted): a site keeps at most
``Site.maxSessions`` sessions (100,000, about 1 KiB each); a new one beyond
expires the least recently used (logged at most once a minute), so a client
that never sends its cookie back cannot fill memory.

Components: ``request.getSession(IFoo)`` is ``session.getComponent(IFoo)``,
what ``session.setComponent(IFoo, obj)`` stored (None when nothing was); there
is no adapter registry (no zope.interface).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

__all__ = ["Session"]

log = logging.getLogger("twistdlite.web")


def default_reactor() -> Any:
    """The running reactor (``twistdlite.reactor``: ``callLater`` and ``seconds``)."""
    from twistdlite import reactor

    return reactor


class Session:
    """A user's session with a site: ``uid``, ``expire()``, ``notifyOnExpire(callback)``, ``touch()``."""

    #: Seconds of idleness (since the last :meth:`touch`) after which the session expires.
    sessionTimeout: float = 900
    _expireCall: Any = None

    def __init__(self, site: Any, uid: bytes, reactor: Any = None) -> None:
        if reactor is None:
            reactor = getattr(site, "reactor", None) or default_reactor()
        self._reactor = reactor
        self.site = site
        self.uid = uid
        self.expireCallbacks: list = []
        self.sessionNamespaces: dict = {}
        self._components: dict = {}
        self.lastModified = 0.0
        self.touch()

    def startCheckingExpiration(self) -> None:
        """Start the expiry timer (``Site.makeSession`` calls it)."""
        self._expireCall = self._reactor.callLater(self.sessionTimeout, self._check_expiry)

    def _check_expiry(self) -> None:
        left = self.lastModified + self.sessionTimeout - self._reactor.seconds()
        if left > 0:
            self._expireCall = self._reactor.callLater(left, self._check_expiry)
        else:
            self._expireCall = None
            self.expire()

    def notifyOnExpire(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` when the session expires or is expired (logged out)."""
        self.expireCallbacks.append(callback)

    def expire(self) -> None:
        """End the session now: the site forgets it, and each ``notifyOnExpire`` callback is called once."""
        sessions = getattr(self.site, "sessions", None)
        if sessions is not None and sessions.get(self.uid) is self:
            del sessions[self.uid]
        call, self._expireCall = self._expireCall, None
        if call is not None and call.active():
            call.cancel()
        callbacks, self.expireCallbacks = self.expireCallbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("Error in the expiry callback %r of session %r", callback, self.uid)

    def touch(self) -> None:
        """Mark the session as used now: it expires ``sessionTimeout`` seconds from now."""
        self.lastModified = self._reactor.seconds()

    # -- components (Twisted's Componentized, without adapters) --------------------------------
    def setComponent(self, interfaceClass: Any, component: Any) -> None:
        """Store ``component`` as this session's ``interfaceClass``."""
        self._components[interfaceClass] = component

    def getComponent(self, interface: Any, default: Any = None) -> Any:
        """The component stored for ``interface``, or ``default``."""
        return self._components.get(interface, default)

    def unsetComponent(self, interfaceClass: Any) -> None:
        """Forget the component stored for ``interfaceClass``."""
        self._components.pop(interfaceClass, None)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self.uid!r}>"


def cookie_name(secure: bool, sitepath: Optional[list]) -> bytes:
    """The session cookie's name: ``TWISTED_SESSION`` or ``TWISTED_SECURE_SESSION``, then ``_segment`` each."""
    return b"_".join([b"TWISTED_SECURE_SESSION" if secure else b"TWISTED_SESSION"] + list(sitepath or ()))
