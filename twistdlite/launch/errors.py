"""The launcher's error types. The CLI edge turns each into one line and an exit status."""

from __future__ import annotations


class LaunchError(Exception):
    """A well-formed request that failed (exit status 1): a missing file, a port in use..."""

    exit_code = 1

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        #: Extra text printed before the message (e.g. the .tac's own traceback).
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class UsageError(LaunchError):
    """Unknown, conflicting or malformed options (exit status 2)."""

    exit_code = 2


class LoadError(LaunchError):
    """The application could not be loaded from a .tac, .tap or plugin."""


class StartError(LaunchError):
    """The application could not be started (a service failed, a port is in use...)."""


class AlreadyRunning(LaunchError):
    """The pidfile is held by a live process."""


class NotAvailable(LaunchError):
    """An option that parses but whose feature is not built yet."""


class StopTimeout(LaunchError):
    """A service did not finish stopping within --shutdown-timeout."""


class PluginError(LoadError):
    """A plugin cannot be loaded (a broken module or entry point) or failed to make its service."""


class UnknownPlugin(UsageError):
    """No plugin goes by the name asked for."""
