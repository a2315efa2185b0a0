"""Saving and loading ``.tap`` files (the pickled application).

Interim implementation: a plain pickle written atomically with mode 0600.
The signed, versioned format of issue 5 replaces it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import Any

from twistdlite.launch.errors import LaunchError, LoadError
from twistdlite.launch.options import Options


def shutdown_tap_path(application: Any) -> str:
    """``<application name>-shutdown.tap`` in the run directory."""
    name = getattr(application, "name", None) or "twistd"
    return f"{name}-shutdown.tap"


def save_shutdown_tap(application: Any, options: Options) -> str:
    """Pickle ``application`` atomically to its shutdown .tap; returns the path."""
    path = shutdown_tap_path(application)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        data = pickle.dumps(application, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise LaunchError(f"cannot save {path}: {exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tap-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise LaunchError(f"cannot save {path}: {exc.strerror}") from None
    return path


def load_tap(path: str, options: Options) -> Any:
    """Load the application pickled in ``path``."""
    from twistdlite.launch.loader import check_application

    if not os.path.exists(path):
        raise LoadError(f"Application file {path!r} does not exist")
    if os.path.isdir(path):
        raise LoadError(f"Application file {path!r} is a directory, not a file")
    try:
        with open(path, "rb") as handle:
            application = pickle.load(handle)
    except Exception as exc:
        raise LoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    return check_application(application, path)
