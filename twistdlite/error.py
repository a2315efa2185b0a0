"""Connection and listening errors, named as in ``twisted.internet.error``."""

from __future__ import annotations


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


class ConnectError(Exception):
    """An outgoing connection could not be made."""


class ConnectionRefusedError(ConnectError):
    """The other side refused the connection."""


class TimeoutError(ConnectError):
    """The connection attempt timed out."""


class CannotListenError(OSError):
    """A listening port could not be bound: ``interface``, ``port`` and the OS reason."""

    def __init__(self, interface: str, port: object, reason: BaseException) -> None:
        super().__init__(getattr(reason, "errno", None), str(reason))
        self.interface = interface
        self.port = port
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.interface or '0.0.0.0'}:{self.port}"
        why = getattr(self.reason, "strerror", None) or str(self.reason)
        return f"Couldn't listen on {where}: {why}."


class ReactorNotRunning(RuntimeError):
    """An operation needs the event loop, and none is installed or running."""
