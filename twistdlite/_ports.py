"""Listening stream ports on the event loop, shared by ``twistdlite.reactor`` and ``twistdlite.internet``.

A port binds its socket synchronously (:meth:`StreamPort.bind`, so a service
can bind in ``privilegedStartService`` with the launching user's rights), then
serves on the loop (:meth:`StreamPort.start`). ``stopListening()`` closes the
listening socket (at once; it returns an awaitable for Twisted-style callers);
``loseAllConnections()`` closes the connections it accepted and waits for them.

:class:`TCPPort`, :class:`SSLPort`, :class:`UNIXPort` and :class:`AdoptedPort`
(an inherited socket, for systemd socket activation) differ only in how they
get their socket and in the options given to ``loop.create_server``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import weakref
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional

from twistdlite._aio import Done, when_running
from twistdlite._transport import is_twisted_factory, protocol_factory_for
from twistdlite.address import UNIXAddress, from_sockaddr
from twistdlite.error import CannotListenError

__all__ = ["StreamPort", "TCPPort", "SSLPort", "UNIXPort", "AdoptedPort", "SocketShare", "serving_ports",
           "AcceptErrorReporter"]

log = logging.getLogger("twistdlite")

#: How often (seconds) a summary of failed accepts is logged while they go on.
ACCEPT_ERROR_INTERVAL = 10.0
#: The accept() errors that mean "out of a resource" (descriptors, buffers, memory): the
#: loop pauses accepting briefly and retries; we count them rather than log each.
_ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class AcceptErrorReporter:
    """The loop's exception handler while ports serve: failed accepts logged once per interval, with a count.

    asyncio's selector loop (``BaseSelectorEventLoop._accept_connection``) meets
    EMFILE, ENFILE, ENOBUFS or ENOMEM from ``accept()`` by removing the listening
    socket's reader, re-adding it a second later (``ACCEPT_RETRY_DELAY``: new
    connections wait in the listen backlog meanwhile) and reporting each failure
    to the loop's exception handler, whose default logs a traceback for each. This
    handler logs the first failure at once, in one line, counts the ones after
    it and logs ``accept() failed N times in the last S s: <reason>`` once per
    :data:`ACCEPT_ERROR_INTERVAL` while they go on; every other context goes to
    the handler it replaced (or the loop's default). uvloop never reports these:
    libuv closes the connections it has no descriptor for ("the EMFILE trick").
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, previous: Any = None) -> None:
        self.loop = loop
        self.previous = previous
        self.count = 0
        self.reason = ""
        self.since = 0.0
        self._timer: Any = None

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> "AcceptErrorReporter":
        """The reporter of ``loop``, made and installed as its exception handler if it has none yet."""
        current = loop.get_exception_handler()
        if isinstance(current, cls):
            return current
        reporter = cls(loop, current)
        loop.set_exception_handler(reporter)
        return reporter

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _ACCEPT_RESOURCE_ERRORS and "accept" in context.get("message", ""):
            self.failed(exc)
        elif self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def failed(self, exc: OSError) -> None:
        """Count one failed accept (the first of a quiet spell is logged at once)."""
        self.reason = exc.strerror or str(exc)
        if self._timer is None:
            log.error("accept() failed: %s; accepting again shortly (new connections wait meanwhile)",
                      self.reason)
            self.since = self.loop.time()
            self._timer = self.loop.call_later(ACCEPT_ERROR_INTERVAL, self.flush)
        else:
            self.count += 1

    def flush(self) -> None:
        """Log the failures counted since the last line, if any (and keep counting for one more interval)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if self.count:
            log.error("accept() failed %d times in the last %.0f s: %s", self.count,
                      max(1.0, self.loop.time() - self.since), self.reason)
            self.count = 0
            self.since = self.loop.time()
            if not self.loop.is_closed():
                self._timer = self.loop.call_later(ACCEPT_ERROR_INTERVAL, self.flush)


#: The share ports bind through while :meth:`SocketShare.binding` is active (a pre-fork supervisor).
_share: Optional["SocketShare"] = None
#: The ports serving in this process (a worker stops accepting on them before it retires).
_serving: "weakref.WeakSet[StreamPort]" = weakref.WeakSet()
#: True once :func:`track_accepts` ran: ports started from then on record each connection as they accept it.
_tracking = False
#: The connections accepted by tracked ports, from the ``accept()`` itself (see :func:`track_accepts`).
_accepted: "weakref.WeakSet[socket.socket]" = weakref.WeakSet()


class _TrackingListener(socket.socket):
    """A listening socket whose ``accept()`` records the new connection in :data:`_accepted` at once."""

    __slots__ = ()

    def accept(self) -> tuple:
        """Accept a connection, as :meth:`socket.socket.accept`, and remember it."""
        conn, address = super().accept()
        _accepted.add(conn)
        return conn, address


def track_accepts() -> None:
    """This process will fork children while it serves: let :func:`close_inherited` find every connection.

    The stdlib loop accepts a connection in one turn and makes it a transport
    (and so a connection of its port) in a later one; a child forked in
    between would keep the accepted socket open, unknown to anyone, and the
    client would wait for an end of stream that never comes (a pool's health
    probe did, one poll in some twenty-five, when a worker was replaced while
    it was being asked). Ports started after this call record each
    connection as ``accept()`` returns it; only a forking supervisor pays for it.
    """
    global _tracking
    _tracking = True


class ShareLoad:
    """What one load of the application took from a :class:`SocketShare`."""

    def __init__(self) -> None:
        self.keys: list = []      # every key its ports used
        self.new: list = []       # the keys it bound first
        self.sockets: list = []   # the socket objects its ports hold

    def add(self, key: Any, sock: socket.socket, new: bool) -> None:
        """Record that a port of this load uses ``sock`` for ``key``."""
        self.keys.append(key)
        self.sockets.append(sock)
        if new:
            self.new.append(key)

    def close(self) -> None:
        """Close the sockets this load's ports hold (the share keeps its own)."""
        for sock in self.sockets:
            sock.close()


def close_inherited() -> None:
    """In a child just forked from a process serving ports on an event loop: close the child's copies.

    The listening sockets and accepted connections of every serving port are
    made to point at ``/dev/null`` (their descriptor numbers stay valid, so no
    other file can be closed by mistake later); the parent's event loop, whose
    epoll instance the child shares, is never touched.
    """
    ports = list(_serving)
    _serving.clear()
    accepted = list(_accepted)  # those the loop has not made transports yet, too
    _accepted.clear()
    if not ports and not accepted:
        return
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for sock in accepted:
            try:
                fd = sock.fileno()
                if fd >= 0:
                    os.dup2(null, fd)
            except OSError:
                pass
        for port in ports:
            socks = [port.socket] + [getattr(getattr(adapter, "transport", None), "get_extra_info",
                                             lambda name: None)("socket") for adapter in port.connections]
            for sock in socks:
                try:
                    fd = sock.fileno() if sock is not None else -1
                    if fd >= 0:
                        os.dup2(null, fd)
                except OSError:
                    pass
            port.server = None
            port.connections = set()
    finally:
        os.close(null)


#: With pre-forked workers on one shared socket: how many connections a worker accepts per wake-up
#: (None: asyncio's default, as many as the backlog). See :func:`share_accepts`.
_accept_batch: Optional[int] = None


#: True in a pre-forked worker: a stream port it binds itself (not through the supervisor's share) is refused.
_pool_worker = False


def refuse_unshared_listening() -> None:
    """This process is a pool's worker: every listening stream socket must come from the supervisor.

    A port first bound in a worker (asked for in ``startService`` or later,
    not in ``privilegedStartService``) would be bound by every worker: on a
    fixed port the first would serve it alone and the others fail with
    "address in use", on port 0 each would serve a port of its own. Either is
    a mistake, so :meth:`StreamPort.bind` refuses it with a reason.
    """
    global _pool_worker
    _pool_worker = True


def share_accepts(batch: int = 1) -> None:
    """This process shares its listening sockets with others: accept at most ``batch`` connections per wake-up.

    asyncio accepts, each time a listening socket is readable, up to its
    backlog of connections at once; with several processes on one socket, the
    first one to wake takes a whole burst (50 connections opened together all
    land in one worker). Taking ``batch`` at a time leaves the rest of the
    burst to the other workers, which the kernel woke too.
    """
    global _accept_batch
    _accept_batch = batch


def _start_shared(server: Any, sock: socket.socket, backlog: int) -> None:
    """Start serving ``server`` with an accept batch smaller than the queue: the queue keeps ``backlog``.

    ``create_server`` takes one number for both (``listen(backlog)`` and the
    accepts per wake-up); the socket is shared, so its queue must not shrink,
    not even for a turn of the loop.
    """
    start = getattr(server, "_start_serving", None)
    if start is None:  # pragma: no cover - every CPython 3.7+ has it
        raise RuntimeError("this asyncio has no Server._start_serving")
    start()
    sock.listen(backlog)


def serving_ports() -> list:
    """The stream ports serving in this process now."""
    return [port for port in list(_serving) if port.server is not None]


class SocketShare:
    """The listening stream sockets a pre-fork supervisor keeps across loads of the application.

    While :meth:`binding` is active, a stream port asking for an address the
    share already holds (the same kind, interface and requested port, or the
    same UNIX path) gets a duplicate of the held socket instead of binding
    again; a port asking for a new address binds as usual and the share keeps
    a duplicate of its socket. So a reloaded application serves on the very
    sockets the previous one did: connections waiting in their queues are
    never refused. The share owns the UNIX socket files: :meth:`close` (or
    :meth:`drop`) removes them, never the ports.
    """

    def __init__(self) -> None:
        #: request key -> (socket, UNIX path or None, file identity or None)
        self.held: dict = {}
        #: The load :meth:`binding` is recording (or last recorded).
        self.current: ShareLoad = ShareLoad()

    @contextmanager
    def binding(self) -> Iterator["ShareLoad"]:
        """Ports bound inside go through the share; yields what they used (a :class:`ShareLoad`)."""
        global _share
        load = ShareLoad()
        previous, _share = _share, self
        self.current = load
        try:
            yield load
        finally:
            _share = previous

    def key_for(self, address: Any) -> Any:
        """The key of the next port of this load asking for ``address``: its occurrence is counted, so two
        ports asking for port 0 get two sockets (and keep them, in order, across reloads)."""
        return (address, sum(1 for key in self.current.keys if key[0] == address))

    def take(self, key: Any) -> Optional[socket.socket]:
        """A duplicate of the socket held for ``key`` (recording its use), or None."""
        found = self.held.get(key)
        if found is None:
            return None
        sock = found[0].dup()
        self.current.add(key, sock, new=False)
        return sock

    def keep(self, key: Any, sock: socket.socket, path: Any = None, identity: Any = None) -> None:
        """Hold a duplicate of a newly bound ``sock`` for ``key`` (and own its socket file)."""
        self.held[key] = (sock.dup(), path, identity)
        self.current.add(key, sock, new=True)

    def sockets(self) -> list:
        """The sockets the share holds (its own duplicates)."""
        return [found[0] for found in self.held.values()]

    def describe(self, key: Any) -> str:
        """How log lines name the socket held for ``key``."""
        found = self.held.get(key)
        if found is not None:
            try:
                name = found[0].getsockname()
                return repr(name) if isinstance(name, (str, bytes)) else f"{name[0]}:{name[1]}"
            except OSError:
                pass
        address = key[0]
        return repr(address[1]) if address[0] == "UNIX" else f"{address[1] or '*'}:{address[2]}"

    def drop(self, keys: Iterable[Any]) -> None:
        """Close the sockets held for ``keys`` (removing their files)."""
        from twistdlite._unixsock import remove_socket_file

        for key in list(keys):
            found = self.held.pop(key, None)
            if found is None:
                continue
            sock, path, identity = found
            sock.close()
            if path is not None:
                remove_socket_file(path, identity)

    def close(self) -> None:
        """Close every held socket (removing their files)."""
        self.drop(list(self.held))


class ConnectionList:
    """The connections a port has accepted: a doubly linked list through their ``_prev``/``_next``.

    What the port's code uses of a set (``add``, ``discard``, iteration over a
    snapshot, ``len``, truth), without a hash table: an entry costs a connection
    two references it already has room for, where a set costs it 30 to 60 bytes
    of table.
    """

    __slots__ = ("_head", "_count")

    def __init__(self) -> None:
        self._head: Any = None
        self._count = 0

    def add(self, item: Any) -> None:
        """Put ``item`` in (nothing if it is in already)."""
        if item._prev is not None or self._head is item:
            return
        head = self._head
        item._prev = None
        item._next = head
        if head is not None:
            head._prev = item
        self._head = item
        self._count += 1

    def discard(self, item: Any) -> None:
        """Take ``item`` out (nothing if it is not in)."""
        previous, following = item._prev, item._next
        if previous is None:
            if self._head is not item:
                return
            self._head = following
        else:
            previous._next = following
        if following is not None:
            following._prev = previous
        item._prev = item._next = None
        self._count -= 1

    def __iter__(self) -> Any:
        items = []
        node = self._head
        while node is not None:
            items.append(node)
            node = node._next
        return iter(items)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __repr__(self) -> str:
        return f"<ConnectionList of {self._count}>"


def factory_name(factory: Any) -> str:
    """The name a factory (or a plain asyncio protocol factory) goes by in log lines."""
    if is_twisted_factory(factory):
        return type(factory).__name__
    return getattr(factory, "__name__", type(factory).__name__)


class StreamPort:
    """What every listening stream port shares: serving, connection bookkeeping, stopping."""

    kind = "TCP"
    backlog = 50

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.socket: Optional[socket.socket] = None
        self.server: Any = None
        self.connections: Any = ConnectionList()
        self._sessions = 0
        self._factory_started = False
        self._address: Any = None
        self._stopped = False
        self._reporter: Optional[AcceptErrorReporter] = None

    # -- the connection bookkeeping StreamAdapter calls --------------------
    def next_session(self) -> int:
        """The number of the next accepted connection (for log prefixes)."""
        number = self._sessions
        self._sessions += 1
        return number

    def connection_started(self, adapter: Any) -> None:
        """Remember an accepted connection."""
        self.connections.add(adapter)

    def connection_ended(self, adapter: Any, reason: Any = None) -> None:
        """Forget a closed connection."""
        self.connections.discard(adapter)

    # -- binding and serving ------------------------------------------------
    def _open_socket(self) -> socket.socket:
        """Create, bind and listen; raise :class:`CannotListenError` on failure."""
        raise NotImplementedError

    def bind(self) -> None:
        """Create, bind and listen on the socket; :class:`CannotListenError` on failure."""
        if self.socket is not None:
            return
        share = _share
        address = self._share_key() if share is not None else None
        key = share.key_for(address) if address is not None else None
        sock = share.take(key) if key is not None else None
        if sock is None:
            if _pool_worker and share is None:
                self._refuse_unshared()
            sock = self._open_socket()
            if key is not None:
                share.keep(key, sock, *self._share_file())
        sock.setblocking(False)
        self.socket = sock
        self._address = sock.getsockname()
        self._stopped = False

    def _share_key(self) -> Any:
        """What a :class:`SocketShare` knows this port's socket by (None: never shared)."""
        return None

    def _refuse_unshared(self) -> None:
        """In a pool's worker: refuse to bind a shareable socket of this worker's own (see
        :func:`refuse_unshared_listening`)."""
        key = self._share_key()
        if key is None:
            return
        interface = None if key[0] == "UNIX" else key[1]
        reason = OSError(None, "a worker of --workers cannot listen on a socket of its own")
        raise CannotListenError(interface, key[-1], reason,
                                "this port was asked for in startService or later, so every worker would "
                                "bind it; listen in privilegedStartService, as TCPServer, UNIXServer and "
                                "strports.service do, or run without --workers")

    def _share_file(self) -> tuple:
        """The socket file a share takes over from this port: (path, identity) or (None, None)."""
        return None, None

    def _server_options(self) -> dict:
        """Extra keyword arguments for ``loop.create_server``."""
        return {}

    def _where(self) -> Any:
        """What the "starting on" log line names."""
        return self.getHost().port

    async def start(self) -> None:
        """Serve on the running loop (binding first if needed)."""
        self.bind()
        if self.server is not None:
            return
        loop = asyncio.get_running_loop()
        batch = _accept_batch if isinstance(loop, asyncio.BaseEventLoop) else None  # uvloop accepts itself
        if _tracking and type(self.socket) is socket.socket:
            self.socket.__class__ = _TrackingListener  # the stdlib loop calls its accept()
        server = await loop.create_server(
            protocol_factory_for(self.factory, self.kind, self),
            sock=self.socket,
            backlog=batch or self.backlog,
            start_serving=batch is None,
            **self._server_options(),
        )
        if batch is not None:
            _start_shared(server, self.socket, self.backlog)
        if self._stopped:  # stopListening() ran while the server was being created
            server.close()
            return
        self.server = server
        _serving.add(self)
        self._reporter = AcceptErrorReporter.install(loop)
        if is_twisted_factory(self.factory):
            self.factory.doStart()
            self._factory_started = True
        log.info("%s starting on %s", factory_name(self.factory), self._where())

    def stopAccepting(self) -> None:
        """Accept no new connection, keeping the socket open: those already accepted are still set up.

        On the stdlib loop, an accepted connection becomes a transport one loop
        turn later, and closing the server in between loses it (reset); so a
        graceful stop takes this step first, waits, then :meth:`stopListening`.
        """
        if self.server is None or self.socket is None:
            return
        try:
            asyncio.get_running_loop().remove_reader(self.socket.fileno())
        except (NotImplementedError, ValueError, RuntimeError, OSError):
            pass  # a loop that accepts by itself (uvloop) has no such gap

    def startListening(self) -> "StreamPort":
        """Bind now and serve once the loop runs (as ``reactor.listenTCP`` does); returns self."""
        self.bind()
        when_running(self.start, f"listening with {factory_name(self.factory)}")
        return self

    def getHost(self) -> Any:
        """The bound address (its ``port`` is the real one when 0 was asked for)."""
        if self._address is None:
            raise RuntimeError("the port is not bound")
        return from_sockaddr(self.kind, self._address)

    def _closed(self) -> None:
        """Called once the listening socket is closed."""

    def stopListening(self) -> Done:
        """Stop accepting connections and close the listening socket (at once; awaitable)."""
        self._stopListening()
        return Done()

    def _stopListening(self) -> None:
        """:meth:`stopListening` without the Deferred (a service's stop: see service.stop_service)."""
        self._stopped = True
        server, self.server = self.server, None
        sock, self.socket = self.socket, None
        if sock is not None:
            if server is not None:
                server.close()  # closes the socket too
                reporter, self._reporter = self._reporter, None
                if reporter is not None:
                    reporter.flush()  # what failed since the last summary is not left unsaid
                log.info("(%s Port %s Closed)", self.kind, self._closed_name())
            else:
                sock.close()
            self._closed()
        if self._factory_started:
            self._factory_started = False
            self.factory.doStop()

    loseConnection = stopListening

    def _closed_name(self) -> Any:
        return self.getHost().port

    async def loseAllConnections(self, timeout: float = 5.0) -> None:
        """Close every accepted connection and wait (bounded) until they are gone."""
        adapters = list(self.connections)
        if not adapters:
            return
        for adapter in adapters:
            transport = getattr(adapter, "transport", None)
            if transport is not None:
                transport.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for adapter in list(self.connections):
            transport = getattr(adapter, "transport", None)
            if transport is not None:
                transport.abort()

    def __repr__(self) -> str:
        where = self._address if self._address is not None else "unbound"
        return f"<{type(self).__name__} {factory_name(self.factory)} on {where!r}>"


def _listen_error_hint(port: Any, exc: OSError) -> str:
    if exc.errno == errno.EACCES and isinstance(port, int) and 0 < port < 1024:
        return "ports below 1024 need root: start as root and drop privileges with -u/--uid"
    if exc.errno == errno.EADDRINUSE:
        return "another process is listening on it"
    return ""


class TCPPort(StreamPort):
    """A listening TCP port for a Twisted-style or plain asyncio factory."""

    kind = "TCP"

    def __init__(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> None:
        super().__init__(factory)
        self.port = port
        self.backlog = backlog
        self.interface = interface

    def _share_key(self) -> Any:
        return ("TCP", self.interface, self.port)

    def _open_socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise CannotListenError(self.interface, self.port, exc) from None
        what = "port"
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.interface, self.port))
            what = "backlog"
            sock.listen(self.backlog)
        except (OSError, OverflowError, TypeError) as exc:
            sock.close()
            if not isinstance(exc, OSError):
                value = self.port if what == "port" else self.backlog
                exc = OSError(errno.EINVAL, f"invalid {what} {value!r}: {exc}")
            raise CannotListenError(self.interface, self.port, exc,
                                    _listen_error_hint(self.port, exc)) from None
        return sock


class SSLPort(TCPPort):
    """A listening TLS port: ``contextFactory`` is an ``ssl.SSLContext`` or has ``getContext()``.

    The context is built when the port binds, before the socket is made: a
    service binds in ``privilegedStartService``, so a key only the launching
    user can read is read before privileges are dropped (also when the
    context factory comes back from a ``.tap`` without its context).
    """

    kind = "TCP"

    def __init__(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
                 interface: str = "") -> None:
        super().__init__(port, factory, backlog, interface)
        self.contextFactory = contextFactory
        self._context: Any = None

    def bind(self) -> None:
        """Build the TLS context (``TLSConfigError`` if it cannot be), then bind as a TCP port does."""
        if self.socket is not None:
            return
        if self._context is None:
            from twistdlite.ssl import server_context

            self._context = server_context(self.contextFactory)
        super().bind()

    def _server_options(self) -> dict:
        return {"ssl": self._context}  # start() binds first, so the context is built


class UNIXPort(StreamPort):
    """A listening UNIX stream socket at ``address``.

    A stale socket file is replaced, a live one refuses; ``mode`` is applied to
    the file, which is removed on stop. ``wantPID`` also holds ``<address>.lock``.
    """

    kind = "UNIX"

    def __init__(self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666,
                 wantPID: bool = False) -> None:
        super().__init__(factory)
        self.port = address
        self.backlog = backlog
        self.mode = mode
        self.wantPID = wantPID
        self._identity: Any = None
        self._lock: Any = None

    def _share_key(self) -> Any:
        return ("UNIX", os.fsdecode(self.port))

    def _share_file(self) -> tuple:
        identity, self._identity = self._identity, None  # the share removes the file, not this port
        return self.port, identity

    def _open_socket(self) -> socket.socket:
        from twistdlite._unixsock import PidLock, bind_unix

        lock = None
        if self.wantPID:
            lock = PidLock(self.port)
            lock.acquire()
        try:
            sock, self._identity = bind_unix(self.port, socket.SOCK_STREAM, self.mode)
            try:
                sock.listen(self.backlog)
            except OSError as exc:
                sock.close()
                raise CannotListenError(None, self.port, exc) from None
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self._lock = lock
        return sock

    def getHost(self) -> Any:
        """The socket's address (``name`` is the path)."""
        if self._address is None:
            raise RuntimeError("the port is not bound")
        return UNIXAddress(os.fsdecode(self.port))

    def _where(self) -> Any:
        return repr(os.fsdecode(self.port))

    def _closed_name(self) -> Any:
        return os.fsdecode(self.port)

    def _closed(self) -> None:
        from twistdlite._unixsock import remove_socket_file

        remove_socket_file(self.port, self._identity)
        self._identity = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class AdoptedPort(StreamPort):
    """A listening socket inherited from the parent process (systemd socket activation)."""

    def __init__(self, fileno: int, family: int, factory: Any) -> None:
        super().__init__(factory)
        self.fileno = fileno
        self.family = family
        self.kind = "UNIX" if family == socket.AF_UNIX else "TCP"

    def _open_socket(self) -> socket.socket:
        try:
            sock = socket.socket(self.family, socket.SOCK_STREAM, fileno=os.dup(self.fileno))
        except OSError as exc:
            raise CannotListenError(f"fd {self.fileno}", "(inherited)", exc) from None
        if sock.type != socket.SOCK_STREAM or sock.family != self.family:
            sock.close()
            raise CannotListenError(f"fd {self.fileno}", "(inherited)",
                                    OSError(errno.EINVAL, "the inherited socket is not a stream socket "
                                                          "of the expected family"))
        return sock

    def _where(self) -> Any:
        host = self.getHost()
        return getattr(host, "port", None) or repr(getattr(host, "name", None))

    def _closed_name(self) -> Any:
        return self._where()
