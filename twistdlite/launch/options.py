"""The immutable options object that flows from the CLI to the runner."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

DEFAULT_TAP = "twistd.tap"
DEFAULT_PIDFILE = "twistd.pid"
DEFAULT_LOGFILE = "twistd.log"
DEFAULT_DAEMON_UMASK = 0o077
DEFAULT_ROTATE_LENGTH = 1_000_000
DEFAULT_MAX_ROTATED = 10


@dataclass(frozen=True)
class Options:
    """Everything a run needs to know, validated. The CLI builds it (``cli.make_options``); tests may too."""

    # Where the application comes from: exactly one of these.
    python: Optional[str] = None          # -y FILE.tac
    file: Optional[str] = None            # -f FILE.tap (twistd.tap when nothing else is given)
    plugin: Optional[str] = None          # a plugin subcommand's name
    plugin_args: tuple = ()               # its arguments

    nodaemon: bool = False                # -n
    no_save: bool = False                 # -o
    rundir: str = "."                     # -d
    chroot: Optional[str] = None
    umask: Optional[int] = None           # None: 0077 when daemonizing, untouched with -n
    pidfile: str = DEFAULT_PIDFILE        # "" = no pidfile
    uid: Optional[int] = None
    gid: Optional[int] = None
    euid: bool = False                    # --euid: set only the effective uid
    reactor: str = "asyncio"
    start_timeout: float = 60.0
    shutdown_timeout: float = 30.0

    # Logging.
    logfile: Optional[str] = None         # -l; None = the default for the mode; "-" = stdout
    syslog: bool = False
    prefix: str = "twistdlite"
    logger: Optional[str] = None
    log_rotate_length: int = DEFAULT_ROTATE_LENGTH
    log_max_rotated: int = DEFAULT_MAX_ROTATED

    # .tap files.
    tap_key: Optional[str] = None
    allow_unsafe_tap: bool = False

    # Debugging.
    profile: Optional[str] = None
    profiler: str = "cprofile"
    savestats: bool = False
    debug: bool = False
    spew: bool = False
    originalname: bool = False

    extra: dict = field(default_factory=dict, compare=False)

    @property
    def daemonize(self) -> bool:
        """True when the run detaches (no ``-n``, no ``-b``)."""
        return not (self.nodaemon or self.debug)

    @property
    def effective_umask(self) -> Optional[int]:
        """The umask to apply, or None to leave it alone."""
        if self.umask is not None:
            return self.umask
        return DEFAULT_DAEMON_UMASK if self.daemonize else None

    @property
    def tap_file(self) -> str:
        """The .tap to read when no .tac or plugin is given."""
        return self.file or DEFAULT_TAP

    def evolve(self, **changes: Any) -> "Options":
        """A copy with ``changes`` applied."""
        return replace(self, **changes)
