"""Where an installed package keeps its files, and the command line that runs the application."""

from __future__ import annotations

import shlex
from typing import List, Optional

PYTHON = "/usr/bin/python3"


class Layout:
    """The installed paths of package ``name`` whose application file is ``app_file`` (a base name)."""

    def __init__(self, name: str, app_file: str, app_type: str, app_name: str) -> None:
        self.name = name
        self.app_file = app_file
        self.app_type = app_type
        #: The application's own name, which names its shutdown .tap.
        self.app_name = app_name
        self.libdir = f"/usr/lib/{name}"
        self.appdir = f"{self.libdir}/app"
        self.pydir = f"{self.libdir}/lib"
        self.statedir = f"/var/lib/{name}"
        self.runtimedir = f"/run/{name}"
        self.logdir = f"/var/log/{name}"
        self.pythonpath = f"{self.appdir}:{self.pydir}"

    @property
    def app_path(self) -> str:
        """The packaged application file."""
        return f"{self.appdir}/{self.app_file}"

    @property
    def state_tap(self) -> str:
        """The shutdown .tap a run without ``-o`` saves in the state directory."""
        from twistdlite.launch.persist import shutdown_tap_path

        class _Named:
            name = self.app_name

        return f"{self.statedir}/{shutdown_tap_path(_Named())}"

    def source_args(self, tap: Optional[str] = None) -> List[str]:
        """``-y FILE`` or ``-f FILE``: the packaged application, or the ``tap`` given."""
        if tap is not None:
            return ["-f", tap]
        return ["-y" if self.app_type == "python" else "-f", self.app_path]

    def foreground_args(self, keep_state: bool, tap: Optional[str] = None) -> List[str]:
        """The twistdlite command of the systemd unit (one of its two forms with ``keep_state``)."""
        args = [PYTHON, "-m", "twistdlite", "--nodaemon", "--pidfile", "", "-l", "-", "--rundir", self.statedir]
        if not keep_state:
            args.append("-o")
        return args + self.source_args(tap)


def shell_join(args: List[str]) -> str:
    """``args`` as one POSIX shell command line."""
    return " ".join(shlex.quote(arg) for arg in args)


def systemd_word(arg: str) -> str:
    """One argument of a unit's ``ExecStart=``, quoted as systemd reads it (specifiers and $ escaped)."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and all(c.isalnum() or c in "/._-:=,+@" for c in escaped):
        return escaped
    if "'" not in escaped and "\\" not in escaped:
        return f"'{escaped}'"
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_start(layout: Layout, keep_state: bool) -> str:
    """The unit's ``ExecStart=`` value.

    Without ``keep_state``: twistdlite runs the packaged application with ``-o``.
    With it, a shell picks the shutdown .tap of the last stop when there is one
    (as ``twistdlite -f`` would) and ``exec``s twistdlite, which stays the main process.
    """
    if not keep_state:
        return " ".join(systemd_word(arg) for arg in layout.foreground_args(False))
    tap = layout.state_tap
    script = (f"if [ -f {shlex.quote(tap)} ]; then exec {shell_join(layout.foreground_args(True, tap))}; "
              f"else exec {shell_join(layout.foreground_args(True))}; fi")
    return " ".join(systemd_word(arg) for arg in ["/bin/sh", "-c", script])
