"""systemd's notify protocol (``sd_notify``), with stdlib sockets only.

Whenever ``NOTIFY_SOCKET`` is set (``Type=notify`` units), the run tells the
service manager what it does, one datagram per message on that ``AF_UNIX``
socket (``@name`` is an abstract socket):

* ``EXTEND_TIMEOUT_USEC=`` while a slow start is still within ``--start-timeout``;
* ``READY=1`` (and ``STATUS=``; ``MAINPID=`` from a daemon) once every service
  has started; never after a failed start, which sends ``STATUS=`` with the
  error instead (the process then exits 1);
* ``WATCHDOG=1`` every ``WATCHDOG_USEC``/2, sent from the event loop itself, so
  a blocked loop stops the pings and systemd restarts the service (only when
  ``WATCHDOG_PID`` is unset or names this process, as ``sd_watchdog_enabled``);
* ``RELOADING=1`` with ``MONOTONIC_USEC=`` at SIGHUP, then ``READY=1`` once the
  log is reopened;
* ``STOPPING=1`` when shutdown begins.

The variables are removed from ``os.environ`` once read, so processes the
application starts do not talk to the service manager in its name; a process
forked from the run inherits a notifier that stays silent.

A ``NOTIFY_SOCKET`` that cannot be reached, or a ``WATCHDOG_USEC`` that is
not a positive number, costs one warning in the log; the run goes on. (The
variables are read before the log is open: what is wrong with them waits in
:attr:`Notifier.warnings` until the run calls :meth:`Notifier.log_warnings`.)
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Callable, List, Mapping, MutableMapping, Optional, Sequence

log = logging.getLogger("twistdlite")

#: The variables the service manager sets for a notify-capable service.
ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Sends ``sd_notify`` messages; one without an address says nothing (the default).

    The socket is connected when the notifier is made, before any ``--chroot``
    (after it, the socket's path is out of reach); a daemon adopts the
    launching command's notifier (:meth:`adopt`) and sends ``MAINPID=``.
    A failure to reach the socket is logged once, at the first message (by
    then the log is open), and silences the notifier.
    """

    def __init__(self, address: Optional[str] = None, watchdog_usec: Optional[int] = None,
                 sender: Optional[Callable[[bytes], None]] = None, warnings: Sequence[str] = ()) -> None:
        self.address = address
        #: What was wrong with the environment, to be logged once the log is open.
        self.warnings: List[str] = list(warnings)
        self.watchdog_usec = watchdog_usec
        self.pid = os.getpid()
        self._sender = sender
        self._socket: Optional[socket.socket] = None
        self._error: Optional[str] = None
        self._broken = False
        self.ready_sent = False
        if address is not None and sender is None:
            self._connect(address)

    def _connect(self, address: str) -> None:
        target = "\0" + address[1:] if address.startswith("@") else address
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(target)
        except OSError as exc:
            sock.close()
            self._error = exc.strerror or str(exc)
            return
        self._socket = sock

    def log_warnings(self) -> None:
        """Log (once) what was wrong with the environment; the run calls it when its log is open."""
        warnings, self.warnings = self.warnings, []
        for message in warnings:
            log.warning("%s", message)

    def fileno(self) -> Optional[int]:
        """The connected socket's descriptor (a daemon keeps it), or None."""
        return self._socket.fileno() if self._socket is not None else None

    def adopt(self) -> None:
        """This process (the daemon the launching command forked) is now the one that talks."""
        self.pid = os.getpid()

    @property
    def enabled(self) -> bool:
        """True when messages go somewhere and this is the process that talks (never a forked child)."""
        return (self.address is not None or self._sender is not None) and not self._broken \
            and os.getpid() == self.pid

    @property
    def watchdog_interval(self) -> Optional[float]:
        """Seconds between two ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None."""
        if not self.enabled or not self.watchdog_usec or self._error is not None:
            return None
        return self.watchdog_usec / 2e6

    def send(self, **fields: Any) -> bool:
        """Send one message of ``KEY=value`` lines; False when it could not be sent (warned once)."""
        if not self.enabled:
            return False
        if self._error is None:
            data = "".join(f"{key}={value}\n" for key, value in fields.items()).encode("utf-8", "replace")
            try:
                if self._sender is not None:
                    self._sender(data)
                else:
                    self._socket.send(data)  # type: ignore[union-attr]
                return True
            except OSError as exc:
                self._error = exc.strerror or str(exc)
        self._broken = True
        log.warning("systemd's notification socket %s cannot be reached (%s); not notifying systemd.",
                    self.address, self._error)
        self.close()
        return False

    # What the run says, in its order.

    def extend_start(self, seconds: float) -> None:
        """Ask for ``seconds`` more to finish starting (``EXTEND_TIMEOUT_USEC``)."""
        self.send(EXTEND_TIMEOUT_USEC=max(1, int(seconds * 1e6)))

    def ready(self, status: str, mainpid: Optional[int] = None) -> None:
        """Every service has started."""
        fields: dict = {"READY": 1, "STATUS": status}
        if mainpid is not None:
            fields["MAINPID"] = mainpid
        self.ready_sent = self.send(**fields) or self.ready_sent

    def failed(self, message: str) -> None:
        """The start failed: say why (``STATUS=``), never ``READY=1``."""
        message = _one_line(message)
        self.send(STATUS=message if message.startswith("start failed") else f"start failed: {message}")

    def stopping(self, reason: str) -> None:
        """Shutdown has begun."""
        self.send(STOPPING=1, STATUS=f"Stopping ({reason})")

    def reloading(self) -> None:
        """A reload (SIGHUP) has begun; :meth:`reloaded` ends it."""
        self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
                  STATUS="Reopening the log (SIGHUP)")

    def reloaded(self, status: str) -> None:
        """The reload is done."""
        self.send(READY=1, STATUS=status)

    def watchdog(self) -> None:
        """One keep-alive ping."""
        self.send(WATCHDOG=1)

    def close(self) -> None:
        """Close the socket."""
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def from_environment(environ: Optional[MutableMapping[str, str]] = None,
                     sender: Optional[Callable[[bytes], None]] = None) -> Notifier:
    """The notifier the environment asks for; the variables are removed from ``environ``.

    ``WATCHDOG_USEC`` that is not a positive integer is ignored with a warning,
    as is one whose ``WATCHDOG_PID`` names another process; the warnings wait in
    the notifier's :attr:`~Notifier.warnings` (the log is not open yet).
    """
    env = os.environ if environ is None else environ
    values = {name: env.pop(name, None) for name in ENVIRONMENT}
    address = values["NOTIFY_SOCKET"] or None
    if address is None and sender is None:
        return Notifier()
    if address is not None and not (address.startswith("/") or address.startswith("@")):
        return Notifier(warnings=[f"NOTIFY_SOCKET={address!r} is neither a path nor an abstract name (@...); "
                                  "not notifying systemd."])
    warnings: List[str] = []
    return Notifier(address, _watchdog_usec(values, warnings), sender, warnings)


def _watchdog_usec(values: Mapping[str, Optional[str]], warnings: List[str]) -> Optional[int]:
    raw = values.get("WATCHDOG_USEC")
    if raw is None or raw == "":
        return None
    try:
        usec = int(raw)
        if usec <= 0:
            raise ValueError
    except ValueError:
        warnings.append(f"WATCHDOG_USEC={raw!r} is not a positive number of microseconds; no watchdog pings.")
        return None
    pid = values.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None  # the watchdog is another process's (sd_watchdog_enabled's rule)
        except ValueError:
            warnings.append(f"WATCHDOG_PID={pid!r} is not a process ID; no watchdog pings.")
            return None
    return usec


class WatchdogPinger:
    """Sends ``WATCHDOG=1`` from the event loop every ``interval`` seconds, until stopped."""

    def __init__(self, notifier: Notifier, loop: Any) -> None:
        self.notifier = notifier
        self.loop = loop
        self.interval = notifier.watchdog_interval
        self._handle: Any = None

    def start(self) -> None:
        """Send a first ping now and schedule the next ones (nothing without a watchdog)."""
        if self.interval is None:
            return
        self._ping()

    def _ping(self) -> None:
        self.notifier.watchdog()
        self._handle = self.loop.call_later(self.interval, self._ping)

    def stop(self) -> None:
        """No more pings."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class NotifyingReadiness:
    """A readiness reporter that also tells systemd: ``READY=1`` or the failure's ``STATUS=``."""

    def __init__(self, inner: Any, notifier: Notifier, status: str, mainpid: Optional[int] = None) -> None:
        self.inner = inner
        self.notifier = notifier
        self.status = status
        self.mainpid = mainpid
        self.error: Optional[str] = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ready(self) -> None:
        """Every service has started: systemd first, then the launching command."""
        if self.error is None:
            self.notifier.ready(self.status, self.mainpid)
        self.inner.ready()

    def failed(self, message: str) -> None:
        """The start failed with ``message`` (the first one is told)."""
        if self.error is None:
            self.error = message or "start failed"
            self.notifier.failed(self.error)
        self.inner.failed(message)

    def close(self) -> None:
        """Nothing more will be reported."""
        self.inner.close()
