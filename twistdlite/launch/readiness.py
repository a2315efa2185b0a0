"""How the run reports its start-up outcome (to a launching command, to systemd), and the foreground's way: silence.

Its own module so that a foreground run does not import the daemon code: the
daemon's end of the readiness pipe (:class:`twistdlite.launch.daemon.PipeReadiness`)
builds on it.
"""

from __future__ import annotations


class Readiness:
    """How the run reports its start-up outcome. In the foreground it says nothing."""

    #: Descriptors detaching closed that the run did not ask to keep (``"fd -> target"``).
    closed_fds: "tuple | list" = ()

    def ready(self) -> None:
        """Every service has started."""

    def failed(self, message: str) -> None:
        """The start failed with ``message`` (the first failure reported wins)."""

    def close(self) -> None:
        """Nothing more will be reported."""
