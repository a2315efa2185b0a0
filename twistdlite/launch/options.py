"""The immutable options object that flows from the CLI to the runner."""

from __future__ import annotations

from typing import Any, Optional

DEFAULT_TAP = "twistd.tap"
DEFAULT_PIDFILE = "twistd.pid"
DEFAULT_LOGFILE = "twistd.log"
DEFAULT_DAEMON_UMASK = 0o077
DEFAULT_ROTATE_LENGTH = 1_000_000
DEFAULT_MAX_ROTATED = 10

#: Every option and its default, in the order the repr shows them. A plain class with
#: ``__slots__`` rather than a frozen dataclass: building a dataclass execs generated
#: code at import, a few milliseconds of every start-up.
FIELDS: dict = {
    # Where the application comes from: exactly one of these.
    "python": None,            # -y FILE.tac
    "file": None,              # -f FILE.tap (twistd.tap when nothing else is given)
    "plugin": None,            # a plugin subcommand's name
    "plugin_args": (),         # its arguments
    "nodaemon": False,         # -n
    "no_save": False,          # -o
    "rundir": ".",             # -d
    "chroot": None,
    "umask": None,             # None: 0077 when daemonizing, untouched with -n
    "pidfile": DEFAULT_PIDFILE,  # "" = no pidfile
    "uid": None,
    "gid": None,
    "euid": False,             # --euid: set only the effective uid
    "reactor": "asyncio",
    "start_timeout": 60.0,
    "shutdown_timeout": 30.0,
    # The pre-fork pool (twistdlite.launch.workers).
    "workers": 1,              # --workers N (auto: resolved to the usable CPUs by the CLI)
    "worker_timeout": 30.0,    # a worker whose loop is silent this long is killed and replaced
    "crash_limit": 5,          # this many worker crashes ...
    "crash_window": 30.0,      # ... within this many seconds stop the pool (exit 1)
    "health": None,            # --health ENDPOINT: /livez and /readyz
    # Logging.
    "logfile": None,           # -l; None = the default for the mode; "-" = stdout
    "syslog": False,
    "prefix": "twistdlite",
    "logger": None,
    "log_rotate_length": DEFAULT_ROTATE_LENGTH,
    "log_max_rotated": DEFAULT_MAX_ROTATED,
    # .tap files.
    "tap_key": None,
    "allow_unsafe_tap": False,
    # Debugging.
    "profile": None,
    "profiler": "cprofile",
    "savestats": False,
    "debug": False,
    "spew": False,
    "originalname": False,
}


class Options:
    """Everything a run needs to know, validated. The CLI builds it (``cli.make_options``); tests may too.

    Immutable: set every field by keyword at construction, :meth:`evolve` for a
    changed copy. ``extra`` holds anything a plugin adds (not compared).
    """

    __slots__ = tuple(FIELDS) + ("extra",)

    python: Optional[str]
    file: Optional[str]
    plugin: Optional[str]
    plugin_args: tuple
    nodaemon: bool
    no_save: bool
    rundir: str
    chroot: Optional[str]
    umask: Optional[int]
    pidfile: str
    uid: Optional[int]
    gid: Optional[int]
    euid: bool
    reactor: str
    start_timeout: float
    shutdown_timeout: float
    workers: int
    worker_timeout: float
    crash_limit: int
    crash_window: float
    health: Optional[str]
    logfile: Optional[str]
    syslog: bool
    prefix: str
    logger: Optional[str]
    log_rotate_length: int
    log_max_rotated: int
    tap_key: Optional[str]
    allow_unsafe_tap: bool
    profile: Optional[str]
    profiler: str
    savestats: bool
    debug: bool
    spew: bool
    originalname: bool
    extra: dict

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(FIELDS) - {"extra"}
        if unknown:
            raise TypeError(f"Options() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        setter = object.__setattr__
        for name, default in FIELDS.items():
            setter(self, name, values.get(name, default))
        setter(self, "extra", dict(values.get("extra") or {}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Options is immutable: cannot set {name!r} (use evolve)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Options is immutable: cannot delete {name!r}")

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        changed = ", ".join(f"{name}={getattr(self, name)!r}" for name, default in FIELDS.items()
                            if getattr(self, name) != default)
        return f"Options({changed})"

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
        values = {name: getattr(self, name) for name in FIELDS}
        values["extra"] = self.extra
        values.update(changes)
        return Options(**values)
