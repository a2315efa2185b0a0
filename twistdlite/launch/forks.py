"""Descriptors that a process a service forks must not inherit: the pidfile's lock and the readiness pipe.

A service that forks a worker (``os.fork``, ``multiprocessing``) would
otherwise hand it the pidfile descriptor, whose lock then outlives the daemon
(``status`` would call a dead daemon running), and the readiness pipe, which
the launching command could then never see closed. The run registers them
once it has detached; a child created by ``fork`` closes them at once (the
lock stays with the daemon: closing a copy of the descriptor does not release
it). Programs started with ``subprocess`` never see them: the descriptors are
not inheritable across ``exec``.
"""

from __future__ import annotations

import os
from typing import Optional

_fds: set = set()
_hooked = False


def close_in_children(*fds: Optional[int]) -> None:
    """Have every child this process forks from now on close ``fds`` (None is skipped)."""
    global _hooked
    if not _hooked:
        os.register_at_fork(after_in_child=_close_all)
        _hooked = True
    _fds.update(fd for fd in fds if fd is not None)


def forget(fd: Optional[int]) -> None:
    """``fd`` is being closed here: a later descriptor with its number is not to be touched."""
    _fds.discard(fd)


def _close_all() -> None:
    for fd in sorted(_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    _fds.clear()
