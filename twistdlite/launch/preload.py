"""Import, before ``--chroot`` and before the privilege drop, every module the run may still need.

twistdlite imports much lazily, so that a plain start stays cheap. Once the
process is chrooted (the interpreter's and twistdlite's files are outside the
jail) or runs as a user who cannot read the installation, a lazy import fails
(``ModuleNotFoundError: No module named 'twistdlite._ports'``). So when either
is in effect, the runner calls :func:`preload` first, which imports everything
in :data:`REGISTRY` whose condition holds; without them nothing is imported
here and start-up stays lazy.

Adding a lazily imported module the run may need after start-up? Register it
here, in the group it belongs to (a condition on the options when it is only
needed sometimes), with :func:`register`::

    register("twistdlite._something", why="imported by ...")
    register("json", when=lambda options: options.logger is not None, why="...")
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Optional

from twistdlite.launch.errors import LaunchError
from twistdlite.launch.options import Options

__all__ = ["Preload", "REGISTRY", "register", "needed", "modules_for", "preload"]

Condition = Callable[[Options], bool]


class Preload:
    """One registered module: its name, when it is needed, and whether it may be missing."""

    __slots__ = ("module", "when", "optional", "why")

    def __init__(self, module: str, when: Optional[Condition] = None, optional: bool = False,
                 why: str = "") -> None:
        self.module = module
        self.when = when
        self.optional = optional
        self.why = why

    def applies(self, options: Options) -> bool:
        """True when ``options`` make a run need this module."""
        return self.when is None or bool(self.when(options))

    def __repr__(self) -> str:
        return f"Preload({self.module!r})"


#: Every module imported before confinement, in order. Add to it with :func:`register`.
REGISTRY: list = []


def register(*modules: str, when: Optional[Condition] = None, optional: bool = False,
             why: str = "") -> None:
    """Add ``modules`` to :data:`REGISTRY` (imported when ``when(options)`` is true, or always).

    ``optional`` modules may be missing (an extra not installed); any other
    that fails to import makes the run fail before it is confined, in one line.
    """
    known = {entry.module for entry in REGISTRY}
    for module in modules:
        if module not in known:
            REGISTRY.append(Preload(module, when, optional, why))
            known.add(module)


def _saving(options: Options) -> bool:
    return not options.no_save


def _uvloop(options: Options) -> bool:
    return options.reactor == "uvloop"


def _plugin(options: Options) -> bool:
    return bool(options.plugin)


def _web(options: Options) -> bool:
    import sys

    return options.plugin == "web" or "twistdlite.web" in sys.modules


def _pool(options: Options) -> bool:
    return options.workers != 1 or bool(options.health)


def _debugging(options: Options) -> bool:
    return bool(options.debug or options.profile or options.spew)


# -- the reactor: every port, connector, datagram and UNIX-socket module (what a
#    service binds or connects at start, or later at run time).
register("twistdlite._loopstate", "twistdlite._aio", "twistdlite._transport", "twistdlite._unixsock",
         "twistdlite._ports", "twistdlite._connectors", "twistdlite._datagram", "twistdlite._clientservice",
         "twistdlite.reactor", "twistdlite.internet", "twistdlite.endpoints", "twistdlite.strports",
         "twistdlite.address", "twistdlite.error", "twistdlite.failure", "twistdlite.protocol",
         "twistdlite.basic", "twistdlite.task", "twistdlite.ssl", "ssl", "fcntl", "random",
         why="the reactor's ports and connectors, imported when a service first binds or connects")
# -- what ported Twisted code reaches at run time: threads, child processes, system event
#    triggers, Twisted's logging APIs.
register("twistdlite.defer", "twistdlite.threads", "twistdlite.threadpool", "twistdlite._events", "twistdlite.process",
         "twistdlite._logevents", "twistdlite.log", "subprocess", "queue", "threading", "string",
         why="reactor.callInThread/deferToThread, spawnProcess, system event triggers, Logger and log.msg")
register("twistdlite.defer", "twistdlite.failure", "contextvars", "types",
         why="Deferreds, which the reactor's Deferred-returning calls import when first used; an unhandled "
             "failure is logged through twistdlite.log when its Deferred is collected")
# -- the loop, and what it imports lazily (host names are resolved in a thread pool).
register("asyncio", "asyncio.unix_events", "selectors", "socket", "concurrent.futures.thread",
         why="the event loop and its resolver's thread pool")
register("uvloop", when=_uvloop, why="the uvloop reactor")
# -- logging: handlers, rotation, syslog, JSON observers.
register("logging.handlers", "twistdlite._loglines", "twistdlite.logger", "twistdlite.logfile", "twistdlite.launch.logsetup",
         "codecs", "syslog", "json", why="log handlers, rotation (SIGUSR1), reopening (SIGHUP), syslog")
# -- encodings a codec lookup loads later: host names (idna), log files, sockets.
register("encodings.idna", "encodings.utf_8", "encodings.utf_8_sig", "encodings.ascii",
         "encodings.latin_1", "encodings.raw_unicode_escape", "encodings.unicode_escape",
         "stringprep", "unicodedata", why="codecs looked up by name when first used")
# -- the shutdown .tap: persist and what it imports only when saving.
register("twistdlite.launch.persist", "twistdlite.launch.picklecheck", "pickle", "_compat_pickle",
         "copyreg", "json", "hashlib", "hmac", "tempfile", "re", "twistdlite.service", when=_saving,
         why="the shutdown .tap save")
# -- the stack dumper (SIGUSR2) and the messages of a hung start or stop.
register("twistdlite.launch.stacks", "traceback", "linecache", "tokenize", "io",
         why="stack dumps and naming a hung service")
# -- the rest of the run and its shutdown path.
register("twistdlite.service", "twistdlite.launch.signals", "twistdlite.launch.privileges",
         "twistdlite.launch.pidfile", "twistdlite.launch.forks", "pwd", "grp", "errno", "stat",
         "weakref", "inspect", "atexit", why="the start, stop and exit")
# -- the built-in plugins' helpers.
register("twistdlite.plugins._proxy", "mimetypes", when=_plugin,
         why="modules the built-in plugins import at run time")
# -- twistdlite.web (the web plugin, or a .tac that imported it): what it imports while serving.
register("twistdlite.web", "twistdlite.web.http", "twistdlite.web.http_headers", "twistdlite.web.resource",
         "twistdlite.web._channel", "twistdlite.web.server", "twistdlite.web.static", "twistdlite.web.util",
         "twistdlite.web.wsgi", "twistdlite.web._h11parser", "twistdlite.threadpool", "twistdlite.defer",
         "httptools", "h11", "email.utils", "email._parseaddr", "calendar", "datetime",
         "html", "urllib.parse", "tempfile", "concurrent.futures", "mimetypes", "twistdlite.error",
         "email.parser", "email.feedparser", "email.policy", "email.message", "base64", "binascii", "quopri",
         when=_web, optional=True, why="twistdlite.web's request handling, listings, WSGI thread pool")
register("twistdlite.web._byteranges", "twistdlite.web._sending", "secrets", "twistdlite.web._session", "twistdlite.urlpath", when=_web,
         optional=True, why="static.File's answers to several byte ranges; sessions; Request.URLPath()")
# -- --workers: the supervisor and its workers (forked after the drop), --health's responder.
register("twistdlite.launch.workers", "twistdlite.launch.health", "twistdlite.launch.runner", "ctypes",
         "collections", when=_pool, why="the pre-fork pool of --workers and the probes of --health")
# -- -b, --profile, --spew.
register("twistdlite.launch.debug", "pdb", "cProfile", "profile", "pstats", when=_debugging,
         why="the debugging wrapper")


def needed(options: Options, uid: Any = None, gid: Any = None) -> bool:
    """True when the run will be confined: ``--chroot``, or a change of user or group."""
    return bool(options.chroot) or uid is not None or gid is not None


def modules_for(options: Options) -> list:
    """The names of the registered modules a run with ``options`` needs, in order."""
    return [entry.module for entry in REGISTRY if entry.applies(options)]


def preload(options: Options, uid: Any = None, gid: Any = None) -> list:
    """Import what the run may need once confined; returns the names imported (empty when not confined).

    :class:`LaunchError` (one line) when a module that is not optional cannot be imported.
    """
    if not needed(options, uid, gid):
        return []
    imported = []
    for entry in REGISTRY:
        if not entry.applies(options):
            continue
        try:
            importlib.import_module(entry.module)
        except ImportError as exc:
            if entry.optional:
                continue
            raise LaunchError(f"cannot import {entry.module} before confining the run "
                              f"(--chroot/--uid/--gid): {exc}") from None
        imported.append(entry.module)
    return imported
