"""Start logging from the options: stdlib ``logging`` with twistd's line format.

Lines look like twistd's: ``2026-11-22T10:15:30+0000 [system] message``, where
the system is the record's ``system`` attribute (set for connection lines, e.g.
``ReverserProtocol,3,127.0.0.1``, by :class:`~twistdlite.logger.SystemFilter`
for every line logged inside a protocol callback) or else the logger's name.
Tracebacks are indented under their line.

Where the lines go — the first that applies, as in twistd:

1. ``--logger PKG.MOD.FACTORY``: what the factory returns (a log observer or a
   ``logging.Handler``, see :mod:`twistdlite.logger`);
2. the Application's :class:`~twistdlite.logger.ILogObserver` component;
3. ``--syslog``: the local syslog socket (``/dev/log``; the environment variable
   ``TWISTDLITE_SYSLOG_SOCKET`` names another one), ident ``--prefix``;
4. ``-l/--logfile PATH`` (``-`` is standard output: a daemon keeps the launching
   command's standard output for it);
5. the default: standard output with ``-n``, else ``twistd.log`` in the run
   directory.

The file of 4/5 rotates at ``--log-rotate-length`` bytes keeping
``--log-max-rotated`` rotated files. When daemonized, what the process writes
to ``sys.stdout``/``sys.stderr`` becomes log lines (``[stdout]``/``[stderr]``).

A destination that fails is reported once on standard error: in a daemon,
into the log itself; when the log is what fails, to the stream standard error
replaced, which in a daemon is ``/dev/null``, so then to the local syslog
socket (ident ``--prefix``) if there is one. It never loops.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import sys
import threading
from typing import Any, Callable, Optional

from twistdlite.launch.errors import LoadError, StartError, UsageError
from twistdlite.launch.options import DEFAULT_LOGFILE, Options
from twistdlite._loglines import JournalFormatter, SystemFilter, TwistdFormatter, report_errors_once

__all__ = ["TwistdFormatter", "LogSetup", "LogStream", "LogStreamBuffer", "destination", "log_path",
           "check", "resolve_logger", "fds_to_keep", "syslog_handler", "start_logging", "capture_stdio",
           "SYSTEM_FILTER", "SYSLOG_SOCKET_ENV", "DEFAULT_SYSLOG_SOCKET", "is_journal", "JOURNAL_STREAM_ENV"]

#: The environment variable naming the syslog socket (default ``/dev/log``).
SYSLOG_SOCKET_ENV = "TWISTDLITE_SYSLOG_SOCKET"
DEFAULT_SYSLOG_SOCKET = "/dev/log"


class LogStream(io.TextIOBase):
    """A text stream whose complete lines become log records: a daemon's ``sys.stdout``/``sys.stderr``.

    Line-buffered: a partial line waits for its newline (or :meth:`close`).
    Each line is logged under the system ``stdout``/``stderr``. A write made
    while this stream is already logging on the same thread (a handler
    reporting its own failure to stderr) goes to ``original`` instead, so it
    can never loop.

    It behaves like the text stream it replaced wherever a service may look:
    ``buffer`` takes bytes (decoded as UTF-8, undecodable bytes kept and
    logged backslash-escaped), ``reconfigure()`` is accepted and changes
    nothing, ``name``, ``mode``, ``encoding``, ``errors``, ``line_buffering``
    are there, ``isatty()`` is False. ``fileno()`` is the descriptor of the
    stream it replaced (``/dev/null`` in a daemon, or the launching command's
    standard output with ``-l -``), so code that writes to the descriptor or
    hands it to a child process works as it does in the foreground, its
    output going where the daemon's descriptor goes.
    """

    mode = "w"
    line_buffering = True
    write_through = False

    def __init__(self, name: str, level: int, original: Any, prefix: str = "twistdlite") -> None:
        super().__init__()
        self.logger = logging.getLogger(name)
        self.level = level
        self.original = original
        self.prefix = prefix
        self.partial = ""
        self._name = f"<{name}>"
        self._extra = {"system": name}
        self._lock = threading.Lock()
        self._local = threading.local()
        self.buffer = LogStreamBuffer(self)

    @property
    def name(self) -> str:
        """``<stdout>`` or ``<stderr>``, as the stream it replaced is named."""
        return self._name

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """Text is logged as is; files are written as UTF-8."""
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        """What cannot be encoded is backslash-escaped."""
        return "backslashreplace"

    @property
    def busy(self) -> bool:
        """True while this stream is logging a line on the calling thread."""
        return getattr(self._local, "busy", False)

    def reconfigure(self, *, encoding: Optional[str] = None, errors: Optional[str] = None,
                    newline: Optional[str] = None, line_buffering: Optional[bool] = None,
                    write_through: Optional[bool] = None) -> None:
        """Accepted, as ``io.TextIOWrapper.reconfigure``, and ignored: lines are logged as text."""

    def writable(self) -> bool:
        """Always writable."""
        return True

    def isatty(self) -> bool:
        """Never a terminal."""
        return False

    def fileno(self) -> int:
        """The descriptor of the stream this one replaced (``/dev/null`` in a daemon)."""
        return self.original.fileno()

    def write(self, text: str) -> int:
        """Log each complete line of ``text``; keep the rest for the next write."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if getattr(self._local, "busy", False):
            try:
                self.original.write(text)
            except Exception:
                pass
            return len(text)
        with self._lock:
            data = self.partial + text
            if "\n" not in data:
                self.partial = data
                return len(text)
            *lines, self.partial = data.split("\n")
        self._emit(lines)
        return len(text)

    def _emit(self, lines: list) -> None:
        self._local.busy = True
        try:
            log, level, extra = self.logger.log, self.level, self._extra
            for line in lines:
                log(level, line, extra=extra)
        finally:
            self._local.busy = False

    def last_resort(self, text: str) -> None:
        """Deliver a report the log itself could not take (its handler is failing); never raises.

        It goes to the stream this one replaced; when that is ``/dev/null``
        (a daemon's), to the local syslog socket instead (ident ``prefix``),
        if there is one. Called at most once per failing handler.
        """
        try:
            if not _is_devnull(self.original):
                self.original.write(text)
                self.original.flush()
                return
        except Exception:
            pass
        _to_syslog(self.prefix, text)

    def flush(self) -> None:
        """Nothing to do: lines are logged as they complete."""

    def close(self) -> None:
        """Log a last partial line, if any (and a last partial character of :attr:`buffer`)."""
        if self.closed:
            return
        self.buffer.close()
        with self._lock:
            rest, self.partial = self.partial, ""
        if rest:
            self._emit([rest])
        super().close()


class LogStreamBuffer(io.BufferedIOBase):
    """The ``buffer`` of a :class:`LogStream`: bytes written to it are logged as its text is.

    Decoded as UTF-8 as they come (a character split across writes is kept
    whole); undecodable bytes are kept as surrogates (``surrogateescape``)
    and written backslash-escaped (``\\udcff``).
    """

    mode = "wb"

    def __init__(self, stream: LogStream) -> None:
        super().__init__()
        import codecs

        self.stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The text stream's name."""
        return self.stream.name

    def writable(self) -> bool:
        """Always writable."""
        return True

    def isatty(self) -> bool:
        """Never a terminal."""
        return False

    def fileno(self) -> int:
        """The text stream's descriptor."""
        return self.stream.fileno()

    def write(self, data: Any) -> int:  # type: ignore[override]
        """Decode ``data`` (any bytes-like object) and write the text to the stream; returns its length."""
        if isinstance(data, str):
            raise TypeError("a bytes-like object is required, not 'str'")
        data = bytes(data)
        with self._lock:
            text = self._decoder.decode(data)
        if text:
            self.stream.write(text)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: lines are logged as they complete."""

    def close(self) -> None:
        """Write what is left of a partial character (escaped), then close."""
        if self.closed:
            return
        with self._lock:
            rest = self._decoder.decode(b"", final=True)
        if rest:
            self.stream.write(rest)
        super().close()


def _is_devnull(stream: Any) -> bool:
    """True when ``stream`` writes to ``/dev/null`` (or has no descriptor to tell)."""
    try:
        found = os.fstat(stream.fileno())
        null = os.stat(os.devnull)
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISCHR(found.st_mode) and found.st_rdev == null.st_rdev


def _to_syslog(prefix: str, text: str) -> None:
    """Send one line to the local syslog socket, if there is one; never raises, never logs."""
    try:
        handler = syslog_handler(prefix)
    except Exception:
        return  # no syslog here: nowhere is left to tell
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    try:
        handler.emit(logging.makeLogRecord({"name": "twistdlite", "levelno": logging.ERROR,
                                            "levelname": "ERROR", "msg": text.rstrip("\n")}))
    finally:
        try:
            handler.close()
        except Exception:
            pass


class LogSetup:
    """The logging this run set up: :meth:`rotate` on SIGUSR1, :meth:`reopen` on SIGHUP, :meth:`close` at exit."""

    def __init__(self, handler: logging.Handler, path: Optional[str] = None,
                 targets: tuple = (), stdio: tuple = ()) -> None:
        self.handler = handler
        self.path = path
        #: The objects whose ``rotate()``/``reopen()`` the signals call.
        self.targets = tuple(targets)
        #: The (name, original, LogStream) triples of a captured sys.stdout/sys.stderr.
        self.stdio = tuple(stdio)

    def rotate(self) -> None:
        """Rotate the log file twistdlite manages (if it was moved away, reopen it instead)."""
        self._call("rotate")

    def reopen(self) -> None:
        """Reopen the log file at its path (after an external rotation)."""
        self._call("reopen")

    def _call(self, method: str) -> None:
        for target in self.targets:
            action = _action(target, method)
            if action is None:
                continue
            try:
                action()
            except Exception as exc:  # a full disk or a vanished directory must not stop the service
                logging.getLogger("twistdlite").error("Could not %s the log: %s: %s", method,
                                                      type(exc).__name__, exc)

    def close(self) -> None:
        """Give back sys.stdout/sys.stderr, detach and close the handler; never raises."""
        for name, original, stream in reversed(self.stdio):
            try:
                stream.close()
            except Exception:
                pass
            if getattr(sys, name) is stream:
                setattr(sys, name, original)
        self.stdio = ()
        logging.captureWarnings(False)
        logging.getLogger().removeHandler(self.handler)
        self.handler.removeFilter(SYSTEM_FILTER)
        try:
            self.handler.close()
        except Exception:
            pass


def _action(target: Any, method: str) -> Optional[Callable[[], None]]:
    """What ``rotate``/``reopen`` means for a target: an observer or LogFile's own method; for a
    handler, ours (``rotate_now``/``reopen``), a stdlib rotating handler's ``doRollover``, a
    ``WatchedFileHandler``'s ``reopenIfNeeded``, or reopening a plain ``FileHandler``."""
    if not isinstance(target, logging.Handler):
        return getattr(target, method, None)
    names = ("rotate_now", "doRollover", "reopenIfNeeded", "reopen") if method == "rotate" else (
        "reopen", "reopenIfNeeded")
    for name in names:
        action = getattr(target, name, None)
        if action is not None:
            return action
    if isinstance(target, logging.FileHandler):
        return _reopener(target)
    return None


def _reopener(handler: logging.FileHandler) -> Callable[[], None]:
    """Reopen a plain ``logging.FileHandler`` at its path."""

    def reopen() -> None:
        handler.acquire()
        try:
            new = handler._open()  # first: if it fails, logging goes on into the open file
            stream, handler.stream = handler.stream, new
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        finally:
            handler.release()

    return reopen


def _component_observer(application: Any) -> Any:
    """The Application's ILogObserver component, or None."""
    get_component = getattr(application, "getComponent", None)
    logger = sys.modules.get("twistdlite.logger")  # not imported: nothing can be registered under ILogObserver
    if get_component is None or logger is None:
        return None
    return file_observer(get_component(logger.ILogObserver, None))


def file_observer(observer: Any) -> Any:
    """``FileLogObserver(f).emit`` (Twisted's howto spelling) as its FileLogObserver, which has the handler and file.

    So the file is kept open when detaching, and rotated and reopened on SIGUSR1/SIGHUP.
    """
    owner = getattr(observer, "__self__", None)
    if owner is not None and getattr(observer, "__name__", "") == "emit" \
            and isinstance(getattr(owner, "handler", None), logging.Handler):
        return owner
    return observer


def destination(options: Options, application: Any = None) -> str:
    """Which destination wins: ``logger``, ``component``, ``syslog``, ``stdout`` or ``file``."""
    if options.logger:
        return "logger"
    if application is not None and _component_observer(application) is not None:
        return "component"
    if options.syslog:
        return "syslog"
    if options.logfile == "-" or (not options.logfile and not options.daemonize):
        return "stdout"
    return "file"


def log_path(options: Options, application: Any = None) -> Optional[str]:
    """The log file this run writes, or None (stdout, syslog, a custom observer without a path)."""
    kind = destination(options, application)
    if kind == "file":
        return options.logfile or DEFAULT_LOGFILE
    if kind == "component":
        path = getattr(getattr(_component_observer(application), "outFile", None), "path", None)
        return path if isinstance(path, str) else None
    return None


def check(options: Options, application: Any = None) -> None:
    """Refuse a ``--logger`` that cannot be found before anything starts (:class:`UsageError`, :class:`LoadError`)."""
    if destination(options, application) == "logger":
        resolve_logger(options.logger)  # type: ignore[arg-type]


def resolve_logger(spec: str) -> Callable[[], Any]:
    """Import the ``--logger`` factory named ``spec``; :class:`UsageError` if it is missing or not callable."""
    import importlib

    parts = spec.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise UsageError(f"--logger {spec!r}: expected the dotted name of a callable, PKG.MOD.FACTORY")
    module = None
    for index in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:index])
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                continue  # this prefix is not a module; try a shorter one
            raise _import_failed(spec, name, exc) from None
        except Exception as exc:
            raise _import_failed(spec, name, exc) from None
        break
    if module is None:
        raise UsageError(f"--logger {spec!r}: no module named {parts[0]!r}")
    found: Any = module
    for attr in parts[index:]:
        try:
            found = getattr(found, attr)
        except AttributeError:
            raise UsageError(f"--logger {spec!r}: {getattr(found, '__name__', found)!s} "
                             f"has no attribute {attr!r}") from None
    if not callable(found):
        raise UsageError(f"--logger {spec!r}: a {type(found).__name__} is not callable "
                         "(give a zero-argument callable returning a log observer)")
    return found


def _import_failed(spec: str, module: str, exc: BaseException) -> LoadError:
    import traceback

    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return LoadError(f"--logger {spec!r}: error while importing {module}: {type(exc).__name__}: {exc}",
                     detail=detail)


def fds_to_keep(application: Any = None) -> list:
    """Descriptors loaded code already logs to, which detaching must not close.

    The Application's observer file and handlers the ``.tac`` put on the root
    logger; closing them would make their writes land in whatever file reuses
    the descriptor.
    """
    observer = _component_observer(application)
    out_file = getattr(observer, "outFile", None)
    streams = [getattr(out_file, "handler", None), out_file, getattr(observer, "handler", None),
               *logging.getLogger().handlers]
    fds = []
    for item in streams:
        stream = getattr(item, "stream", item)
        try:
            fd = stream.fileno()
        except Exception:
            continue
        if isinstance(fd, int) and fd > 2 and fd not in fds:
            fds.append(fd)
    return fds


def syslog_handler(prefix: str, address: Optional[str] = None) -> logging.Handler:
    """A handler sending to the local syslog socket, ident ``prefix[pid]``; :class:`StartError` if unreachable."""
    import logging.handlers

    from twistdlite._loglines import SyslogFormatter

    address = address or os.environ.get(SYSLOG_SOCKET_ENV) or DEFAULT_SYSLOG_SOCKET
    try:
        # Newer Pythons connect lazily and drop records silently when nothing is
        # there; a socket that does not even exist is a start-up error.
        if not stat.S_ISSOCK(os.stat(address).st_mode):
            raise StartError(f"cannot log to syslog at {address}: not a socket")
        handler = logging.handlers.SysLogHandler(address=address,
                                                 facility=logging.handlers.SysLogHandler.LOG_USER)
    except OSError as exc:
        raise StartError(f"cannot log to syslog at {address}: {exc.strerror or exc}") from None
    handler.ident = f"{prefix}[{os.getpid()}]: "
    handler.setFormatter(SyslogFormatter())
    return handler


def _file_handler(options: Options, path: str) -> logging.Handler:
    from twistdlite.logfile import RotatingLogHandler

    try:
        return RotatingLogHandler(path, maxBytes=options.log_rotate_length,
                                  backupCount=options.log_max_rotated or None)
    except OSError as exc:
        where = os.path.abspath(path)
        if exc.errno == errno.ELOOP:
            raise StartError(f"cannot open log file {where}: it is a symbolic link (not followed)") from None
        raise StartError(f"cannot open log file {where}: {exc.strerror or exc}") from None


def _stdout_handler(stream: Any) -> logging.Handler:
    stream = stream or sys.stdout
    if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="backslashreplace")  # undecodable bytes never kill a line
        except Exception:
            pass
    return logging.StreamHandler(stream)


#: The variable systemd sets when standard output/error is a stream to the journal (``DEVICE:INODE``).
JOURNAL_STREAM_ENV = "JOURNAL_STREAM"


def is_journal(stream: Any, environ: Any = None) -> bool:
    """True when ``stream`` is the journal stream ``JOURNAL_STREAM`` names (lines then carry ``<N>``)."""
    named = (os.environ if environ is None else environ).get(JOURNAL_STREAM_ENV, "")
    device, _, inode = named.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False


def _observer_handler(observer: Any, what: str) -> logging.Handler:
    from twistdlite.logger import handler_for

    try:
        return handler_for(observer)
    except TypeError as exc:
        raise StartError(f"{what}: {exc}") from None


def _from_logger(spec: str) -> tuple:
    factory = resolve_logger(spec)
    try:
        observer = factory()
    except Exception as exc:
        raise StartError(f"--logger {spec!r}: the factory failed: {type(exc).__name__}: {exc}") from None
    observer = file_observer(observer)
    return observer, _observer_handler(observer, f"--logger {spec!r} returned a {type(observer).__name__}")


def capture_stdio(prefix: str = "twistdlite") -> tuple:
    """Replace ``sys.stdout``/``sys.stderr`` with :class:`LogStream` objects; returns what to restore.

    ``prefix`` is the syslog ident of a failure report nothing else can take
    (see :meth:`LogStream.last_resort`).
    """
    captured = []
    for name, level in (("stdout", logging.INFO), ("stderr", logging.ERROR)):
        original = getattr(sys, name)
        stream = LogStream(name, level, original, prefix)
        setattr(sys, name, stream)
        captured.append((name, original, stream))
    return tuple(captured)


def start_logging(options: Options, application: Any = None, stream: Any = None) -> LogSetup:
    """Route the root logger to the run's destination; :class:`StartError` if it cannot be opened."""
    check(options, application)
    kind = destination(options, application)
    path: Optional[str] = None
    targets: tuple = ()
    if kind == "logger":
        observer, handler = _from_logger(options.logger)  # type: ignore[arg-type]
        targets = (observer,) if observer is not handler else (handler,)
        if isinstance(observer, logging.Handler):
            report_errors_once(handler, f"the --logger handler {handler!r}")
    elif kind == "component":
        observer = _component_observer(application)
        handler = _observer_handler(observer, "the Application's ILogObserver component")
        targets = (observer,)
        path = log_path(options, application)
    elif kind == "syslog":
        handler = report_errors_once(syslog_handler(options.prefix), "syslog")
    elif kind == "stdout":
        handler = report_errors_once(_stdout_handler(stream), "standard output")
        handler.setFormatter(JournalFormatter() if is_journal(handler.stream) else TwistdFormatter())
    else:
        path = options.logfile or DEFAULT_LOGFILE
        handler = report_errors_once(_file_handler(options, path), os.path.abspath(path))
        handler.setFormatter(TwistdFormatter())
        targets = (handler,)
    handler.addFilter(SYSTEM_FILTER)  # a protocol callback's lines get the connection's system
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level == logging.WARNING:  # the default: let INFO through; keep a level the .tac chose
        root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    stdio = capture_stdio(options.prefix) if options.daemonize else ()
    return LogSetup(handler, path, targets, stdio)


#: The filter :func:`start_logging` puts on the handler it installs.
SYSTEM_FILTER = SystemFilter()
