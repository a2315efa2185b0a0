"""Connection and listening errors, named as in ``twisted.internet.error``."""

from __future__ import annotations

import errno
from typing import Any, Optional

__all__ = [
    "ConnectionDone",
    "ConnectionLost",
    "ConnectionAborted",
    "ConnectError",
    "ConnectionRefusedError",
    "TimeoutError",
    "DNSLookupError",
    "UserError",
    "NoProtocol",
    "CannotListenError",
    "MessageLengthError",
    "MulticastJoinError",
    "ReactorNotRunning",
    "ReactorAlreadyRunning",
    "ProcessDone",
    "ProcessTerminated",
    "ProcessExitedAlready",
    "EndpointStringError",
    "connect_error_for",
]


class ConnectionDone(Exception):
    """The connection was closed cleanly."""

    def __str__(self) -> str:
        return "Connection was closed cleanly."


class ConnectionLost(Exception):
    """The connection was lost in a non-clean fashion."""

    def __str__(self) -> str:
        return "Connection to the other side was lost in a non-clean fashion: " + (
            ", ".join(str(a) for a in self.args) or "connection lost"
        )


class ConnectionAborted(ConnectionLost):
    """The connection was aborted locally (``abortConnection``)."""


class ConnectError(Exception):
    """An outgoing connection could not be made: ``osError`` is the OS reason, if any."""

    def __init__(self, osError: Any = None, string: str = "") -> None:
        super().__init__(osError, string)
        self.osError = osError
        self.string = string

    def __str__(self) -> str:
        text = (self.__doc__ or "").split(":")[0].strip().rstrip(".")
        reason = self.string or (
            (getattr(self.osError, "strerror", None) or str(self.osError)) if self.osError else ""
        )
        return f"{text}: {reason}." if reason else f"{text}."


class ConnectionRefusedError(ConnectError):
    """Connection was refused by other side."""


class TimeoutError(ConnectError):  # noqa: A001 - Twisted's name
    """User timeout caused connection failure."""


class DNSLookupError(ConnectError):
    """DNS lookup failed."""


class UserError(ConnectError):
    """User aborted connection."""


class NoProtocol(ConnectError):
    """The factory built no protocol (``buildProtocol`` returned None)."""


def connect_error_for(exc: BaseException) -> ConnectError:
    """The :class:`ConnectError` subclass for an exception raised while connecting."""
    import asyncio
    import builtins
    import socket

    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, builtins.TimeoutError)):
        return TimeoutError(exc if getattr(exc, "errno", None) else None,
                            "" if getattr(exc, "errno", None) else "connection attempt timed out")
    if isinstance(exc, socket.gaierror):
        return DNSLookupError(exc)
    if isinstance(exc, builtins.ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return ConnectionRefusedError(exc)
    return ConnectError(exc)


class CannotListenError(OSError):
    """A listening port could not be bound: ``interface``, ``port`` and the OS reason.

    For a UNIX socket ``interface`` is None and ``port`` is the path.
    """

    def __init__(self, interface: Optional[str], port: object, reason: BaseException, hint: str = "") -> None:
        super().__init__(getattr(reason, "errno", None), str(reason))
        self.interface = interface
        self.port = port
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        if self.interface is None:
            where = f"UNIX socket {self.port}"
        else:
            host = self.interface or "0.0.0.0"
            where = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        why = getattr(self.reason, "strerror", None) or str(self.reason)
        hint = f" ({self.hint})" if self.hint else ""
        return f"Couldn't listen on {where}: {why}{hint}."


class MessageLengthError(OSError):
    """A datagram was too long to send or to receive."""


class MulticastJoinError(OSError):
    """Joining (or leaving) a multicast group failed."""


class ReactorNotRunning(RuntimeError):
    """An operation needs the event loop, and none is installed or running."""


class ReactorAlreadyRunning(RuntimeError):
    """``reactor.run()`` was called while the reactor runs."""


class ProcessDone(ConnectionDone):
    """A child process exited with status 0 (``exitCode`` 0, ``signal`` None)."""

    def __init__(self, status: Any = 0) -> None:
        super().__init__("process finished with exit code 0")
        self.exitCode = 0
        self.signal = None
        self.status = status

    def __str__(self) -> str:
        return "A process has ended without apparent errors: process finished with exit code 0."


class ProcessTerminated(ConnectionLost):
    """A child process ended badly: ``exitCode`` non-zero, or killed by ``signal`` (``status`` is the raw wait status).

    Also the reason when the program could not be started at all (``exitCode``
    127 and the reason in the message, as a shell reports it).
    """

    def __init__(self, exitCode: Optional[int] = None, signal: Optional[int] = None,
                 status: Optional[int] = None, reason: Optional[str] = None) -> None:
        self.exitCode = exitCode
        self.signal = signal
        self.status = status
        if reason is not None:
            message = reason
        elif signal is not None:
            message = f"process ended by signal {signal}"
        else:
            message = f"process ended with exit code {exitCode}"
        super().__init__(message)

    def __str__(self) -> str:
        return f"A process has ended with a probable error condition: {self.args[0]}."


class ProcessExitedAlready(Exception):
    """The process has already exited (``signalProcess`` after the end)."""


class EndpointStringError(ValueError):
    """A malformed endpoint description such as ``tcp:port=abc``."""
