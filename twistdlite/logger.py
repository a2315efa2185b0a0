"""Log observers, as in ``twisted.logger``, on the standard ``logging`` module.

Everything logs through stdlib ``logging`` (``logging.getLogger(__name__).info(...)``);
twistdlite's launcher sends the root logger's records to one destination. A
**log observer** chooses that destination; it is one of:

* a ``logging.Handler`` — used as is (it gets :class:`TwistdFormatter` if it
  has no formatter of its own);
* an object with a ``handler`` attribute holding a ``logging.Handler`` — what
  :func:`textFileLogObserver` and :func:`jsonFileLogObserver` return; the
  handler does the work, so logging to a file costs what stdlib logging costs;
* any other callable taking one argument, an **event** ``dict`` — Twisted's
  shape (:class:`ILogObserver`). Its keys:

  ``log_time``       the time of the event (``float``, seconds since the epoch)
  ``log_level``      ``"debug"``, ``"info"``, ``"warn"``, ``"error"`` or ``"critical"``
  ``log_namespace``  the logger's name
  ``log_system``     the system shown between brackets (the record's ``system``
                     attribute, else the logger's name)
  ``message``        the formatted message text
  ``log_format``     the same text with ``{`` and ``}`` doubled, so Twisted-style
                     ``format(**event)`` code renders it unchanged
  ``log_traceback``  the formatted traceback when there is one, else ``None``
  ``log_record``     the ``logging.LogRecord`` itself

Register an observer on the Application, as in the Twisted documentation::

    from twistdlite.service import Application
    from twistdlite.logger import ILogObserver, textFileLogObserver
    from twistdlite.logfile import DailyLogFile
    application = Application("myapp")
    logfile = DailyLogFile("my.log", "/tmp")
    application.setComponent(ILogObserver, textFileLogObserver(logfile))

A line logged while a connection's protocol code runs (``connectionMade``,
``dataReceived``/``lineReceived``, ``connectionLost``, a datagram protocol's
``datagramReceived``...) gets that connection's system, as in twistd:
``[ReverserProtocol,3,127.0.0.1]``, ``[EchoUDP (UDP)]``. The adapters driving
protocols mark the running connection in :data:`system_context`;
:class:`SystemFilter`, on the handler the launcher installs, copies it into
the record's ``system`` attribute when the line is logged. Work the protocol
schedules for later (``callLater``, a task) runs outside the callback and is
logged under its logger's name, as in twistd.

Twisted's event API is here too: ``log = Logger()`` (as a module or class
attribute) and ``log.info("x={x}", x=1)``; ``globalLogPublisher.addObserver``
registers an observer for every line, whichever API logged it (see
``twistdlite._logevents``). An event from a ``Logger`` reaches observers with
its own keys (``log_level`` is a :class:`LogLevel`, which is also its name as a
``str``).

An observer or handler that raises is reported once on standard error and
then ignored; logging never stops the service. When that report cannot be
delivered either (standard error is captured into the very log that fails),
it goes to the stream standard error replaced (see :func:`report_errors_once`).
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import time
from typing import Any, Callable, Optional, Protocol, TextIO, runtime_checkable

from twistdlite._logevents import (
    InvalidLogLevelError,
    LogBeginner,
    Logger,
    LogLevel,
    LogPublisher,
    formatEvent,
    globalLogBeginner,
    globalLogPublisher,
)
from twistdlite.service import _AdaptingProtocolMeta

__all__ = [
    "ILogObserver",
    "TwistdFormatter",
    "JSONFormatter",
    "FileLogObserver",
    "ObserverHandler",
    "textFileLogObserver",
    "jsonFileLogObserver",
    "handler_for",
    "event_from_record",
    "report_errors_once",
    "Mark",
    "SystemContext",
    "SystemFilter",
    "system_context",
    "current_system",
    "EscapingStreamHandler",
    "LogObserverError",
    "Logger",
    "LogLevel",
    "LogPublisher",
    "LogBeginner",
    "InvalidLogLevelError",
    "globalLogPublisher",
    "globalLogBeginner",
    "formatEvent",
]

_LEVELS = {logging.DEBUG: LogLevel.debug, logging.INFO: LogLevel.info, logging.WARNING: LogLevel.warn,
           logging.ERROR: LogLevel.error, logging.CRITICAL: LogLevel.critical}


@runtime_checkable
class ILogObserver(Protocol, metaclass=_AdaptingProtocolMeta):
    """A log observer: called with each event ``dict`` (see the module docstring for its keys).

    Also the key an Application's observer is registered under:
    ``application.setComponent(ILogObserver, observer)``.
    """

    def __call__(self, event: dict) -> None:
        """Observe one event."""


class Mark:
    """A running connection or port, as :data:`system_context` holds it: its ``system`` and ``thread``.

    Anything with these two attributes is a mark: a stream connection's
    adapter is its own mark (its ``system`` is built only when a line is
    logged); ``Mark`` is the plain one.
    """

    __slots__ = ("system", "thread")

    def __init__(self, system: str, thread: int) -> None:
        self.system = system
        self.thread = thread


class SystemContext:
    """Which connection's protocol code is running, and on which thread.

    ``mark`` is ``None`` or a mark (an object with ``system``, the label, and
    ``thread``, the ident of the thread its callbacks run on; see :class:`Mark`).
    The adapters that call protocol code store their connection's mark in it
    for the duration of the call and put the previous value back afterwards:
    two attribute stores, no allocation, so the per-request cost stays a few
    nanoseconds. The thread ident keeps a line logged meanwhile by another
    thread from being given the connection's system.
    """

    __slots__ = ("mark",)

    def __init__(self) -> None:
        self.mark: Any = None

    def system(self) -> Optional[str]:
        """The system of the protocol callback running on the calling thread, or ``None``."""
        mark = self.mark
        if mark is not None and mark.thread == threading.get_ident():
            return mark.system
        return None

    def enter(self, mark: Any) -> Any:
        """Mark ``mark`` (from :meth:`mark_for`, or an adapter) as running; returns what :meth:`leave` puts back."""
        previous = self.mark
        self.mark = mark
        if previous is not None and previous.thread != mark.thread:
            return None  # another thread's: never put back over this thread's later lines
        return previous

    def leave(self, previous: Any) -> None:
        """End the call :meth:`enter` began."""
        self.mark = previous

    @staticmethod
    def mark_for(system: str) -> Mark:
        """The mark of ``system`` running on the calling thread (made once per port)."""
        return Mark(system, threading.get_ident())


#: The one :class:`SystemContext` of the process.
system_context = SystemContext()


def current_system() -> Optional[str]:
    """The system (``Proto,3,127.0.0.1``) of the protocol callback running on this thread, or ``None``."""
    return system_context.system()


class SystemFilter(logging.Filter):
    """Gives a record logged inside a protocol callback that connection's system (a handler filter).

    A handler's filters run in the thread that logs, when it logs, so the
    system is recorded then, even when the record is written later (a queue
    or memory handler). A record with its own ``system`` keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set ``record.system`` from :data:`system_context`; never drops a record."""
        mark = system_context.mark
        if mark is not None and "system" not in record.__dict__ and mark.thread == threading.get_ident():
            record.system = mark.system  # type: ignore[attr-defined]
        return True


def system_of(record: logging.LogRecord) -> str:
    """The system of a record: its ``system`` attribute, else its logger's name."""
    return getattr(record, "system", None) or record.name


class TwistdFormatter(logging.Formatter):
    """Formats records as twistd does: ``<ISO time> [system] message``, tracebacks indented by a tab.

    The time is local, to the second, with the UTC offset
    (``2026-11-22T10:15:30+0000``); ``timeFormat`` (a ``time.strftime`` format)
    changes it.
    """

    def __init__(self, timeFormat: str = "%Y-%m-%dT%H:%M:%S%z") -> None:
        super().__init__()
        self.timeFormat = timeFormat
        self._stamp: tuple = (None, "")

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        """The record's time, computed once per second."""
        second = int(record.created)
        cached_second, stamp = self._stamp
        if second != cached_second:
            stamp = time.strftime(datefmt or self.timeFormat, time.localtime(second))
            self._stamp = (second, stamp)
        return stamp

    def format(self, record: logging.LogRecord) -> str:
        """One line; the further lines of a message, and its traceback, indented by a tab."""
        message = record.getMessage()
        if "\n" in message:
            message = message.rstrip("\n").replace("\n", "\n\t")
        line = f"{self.formatTime(record)} [{getattr(record, 'system', None) or record.name}] {message}"
        if record.exc_info or record.exc_text or record.stack_info:
            extra = self.details(record)
            if extra:
                line += "\n\t" + extra.replace("\n", "\n\t")
        return line

    def details(self, record: logging.LogRecord) -> str:
        """The traceback (and stack) text of a record, or ``""``."""
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        extra = record.exc_text or ""
        if record.stack_info:
            extra = (extra + "\n" if extra else "") + self.formatStack(record.stack_info)
        return extra.rstrip("\n")


class SyslogFormatter(TwistdFormatter):
    """``[system] message`` (syslog adds the time and the ident), tracebacks indented."""

    def format(self, record: logging.LogRecord) -> str:
        """One message, the traceback indented under it; undecodable bytes backslash-escaped."""
        line = f"[{system_of(record)}] {record.getMessage().rstrip(chr(10))}"
        extra = self.details(record)
        if extra:
            line += "\n" + extra
        line = line.replace("\n", "\n\t")
        return line.encode("utf-8", "backslashreplace").decode("utf-8")


#: syslog priorities of the stdlib levels (``<N>`` prefixes journald reads).
SYSLOG_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 emergency .. 7 debug) of a stdlib logging level."""
    for level, priority in SYSLOG_PRIORITIES:
        if levelno >= level:
            return priority
    return 7


class JournalFormatter(TwistdFormatter):
    """``<N>[system] message`` for a stream that is systemd's journal: ``N`` is the syslog priority.

    No timestamp (journald stamps each line); every further line of a
    message or traceback carries the same priority, tab-indented, so
    ``journalctl -p`` filters whole records.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Each line prefixed with the record's priority."""
        prefix = f"<{syslog_priority(record.levelno)}>"
        text = f"[{system_of(record)}] {record.getMessage().rstrip(chr(10))}"
        extra = self.details(record)
        if extra:
            text += "\n" + extra
        return prefix + text.replace("\n", "\n" + prefix + "\t")


class JSONFormatter(TwistdFormatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``system``, ``message``, ``exception``.

    ``time`` is the local ISO 8601 time with microseconds and UTC offset;
    ``exception`` (the traceback text) is present only when there is one.
    """

    def __init__(self) -> None:
        import json  # only when JSON is asked for

        super().__init__()
        self._dumps = json.dumps

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        micro = int((record.created % 1) * 1_000_000)
        stamp = self.formatTime(record)
        event = {
            "time": f"{stamp[:19]}.{micro:06d}{stamp[19:]}",
            "level": _LEVELS.get(record.levelno) or record.levelname.lower(),
            "logger": record.name,
            "system": system_of(record),
            "message": record.getMessage(),
        }
        extra = self.details(record)
        if extra:
            event["exception"] = extra
        return self._dumps(event, ensure_ascii=False, default=repr)


def event_from_record(record: logging.LogRecord, formatter: Optional[logging.Formatter] = None) -> dict:
    """The Twisted-style event ``dict`` for a record (see the module docstring)."""
    message = record.getMessage()
    traceback_text = None
    if record.exc_info or record.exc_text or record.stack_info:
        details = formatter if isinstance(formatter, TwistdFormatter) else _DETAILS
        traceback_text = details.details(record) or None
    original = getattr(record, "log_event", None)
    if original is not None:  # logged by a twistdlite.logger.Logger: its own keys, as Twisted's observers expect
        event = dict(original)
        event.update(log_system=system_of(record), message=message, log_traceback=traceback_text,
                     log_record=record)
        return event
    return {
        "log_time": record.created,
        "log_level": _LEVELS.get(record.levelno) or record.levelname.lower(),
        "log_namespace": record.name,
        "log_system": system_of(record),
        "message": message,
        "log_format": message.replace("{", "{{").replace("}", "}}"),
        "log_traceback": traceback_text,
        "log_record": record,
    }


_DETAILS = TwistdFormatter()


def record_from_event(event: dict) -> logging.LogRecord:
    """A ``LogRecord`` for an event ``dict`` (its ``log_record`` when it carries one)."""
    record = event.get("log_record")
    if isinstance(record, logging.LogRecord):
        return record
    levels = {name: level for level, name in _LEVELS.items()}
    level = levels.get(str(event.get("log_level", "info")), logging.INFO)
    namespace = str(event.get("log_namespace") or "-")
    text = event.get("message")
    if text is None:
        fmt = event.get("log_format") or ""
        try:
            text = fmt.format(**event)
        except Exception:
            text = fmt
    record = logging.LogRecord(namespace, level, "", 0, str(text), None, None)
    if event.get("log_time") is not None:
        record.created = float(event["log_time"])
    if event.get("log_system"):
        record.system = str(event["log_system"])  # type: ignore[attr-defined]
    if event.get("log_traceback"):
        record.exc_text = str(event["log_traceback"])
    return record


def report_errors_once(handler: logging.Handler, what: Optional[str] = None) -> logging.Handler:
    """Make ``handler`` report its first failure on standard error, and stay quiet after that.

    Replaces the stdlib's behaviour (a traceback on stderr for every failed
    record), which for a full disk would flood stderr, and, in a daemon whose
    stderr is captured into the log, would loop.

    When standard error is captured into the log (a daemon's) and the report
    cannot get through either (the handler fails on it too, or stderr is
    already busy logging on this thread), it is handed to the captured
    stream's ``last_resort(text)`` (the stream stderr replaced, or syslog; see
    ``twistdlite.launch.logsetup.LogStream``), else written to
    ``sys.__stderr__``. It never loops: at most one report per handler.
    """
    state = {"reported": False, "reporting": False, "lost": False}
    label = what or repr(handler)

    def handleError(record: logging.LogRecord) -> None:
        if state["reporting"]:
            state["lost"] = True  # the report itself went back into this failing handler
            return
        if state["reported"]:
            return
        state["reported"] = True
        error = sys.exc_info()[1]
        reason = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        message = (f"twistdlite: logging to {label} failed: {reason} "
                   "(further failures are not reported)\n")
        stderr = sys.stderr
        state["reporting"] = True
        try:
            if getattr(stderr, "busy", False):
                state["lost"] = True  # a captured stderr logging on this thread would drop it
            else:
                stderr.write(message)
                stderr.flush()
        except Exception:
            state["lost"] = True
        finally:
            state["reporting"] = False
        if state["lost"]:
            _last_resort(stderr, message)

    handler.handleError = handleError  # type: ignore[method-assign]
    return handler


def _last_resort(stderr: Any, message: str) -> None:
    """Deliver a failure report that could not go through ``stderr``; never raises."""
    try:
        last_resort = getattr(stderr, "last_resort", None)
        if callable(last_resort):
            last_resort(message)
            return
        original = sys.__stderr__
        if original is not None and original is not stderr:
            original.write(message)
            original.flush()
    except Exception:
        pass


class ObserverHandler(logging.Handler):
    """A ``logging.Handler`` that passes each record, as an event ``dict``, to a callable observer."""

    def __init__(self, observer: Callable[[dict], Any]) -> None:
        super().__init__()
        self.observer = observer
        self.setFormatter(TwistdFormatter())
        report_errors_once(self, f"the log observer {observer!r}")

    def emit(self, record: logging.LogRecord) -> None:
        """Call the observer with the record's event."""
        try:
            self.observer(event_from_record(record, self.formatter))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class EscapingStreamHandler(logging.StreamHandler):
    """A ``StreamHandler`` that writes a line its stream cannot encode backslash-escaped instead of losing it.

    A file the user opened in strict mode (``open(path, "a")``) refuses lone
    surrogates (undecodable bytes kept by ``surrogateescape``); such a line is
    written again with them escaped (``\\udcff``). The normal path costs what
    ``StreamHandler`` costs.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Write the formatted record and a newline, escaped if the stream cannot encode it."""
        try:
            text = self.format(record) + self.terminator
            stream = self.stream
            try:
                stream.write(text)
            except UnicodeEncodeError:
                encoding = getattr(stream, "encoding", None) or "utf-8"
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _stream_handler_for(outFile: Any) -> logging.Handler:
    """The handler writing to ``outFile``: a LogFile's own, else an :class:`EscapingStreamHandler`."""
    handler = getattr(outFile, "handler", None)
    if isinstance(handler, logging.Handler):
        return handler
    return EscapingStreamHandler(outFile)


def _named_file(out_file: Any) -> Optional[tuple]:
    """``(real path, encoding, errors)`` of a text file open on a named regular file, else ``None``.

    The path is resolved now (the run may change directory before the
    ``.tap`` is saved) and checked to be the very file that is open.
    """
    name = getattr(out_file, "name", None)
    encoding = getattr(out_file, "encoding", None)
    if not isinstance(name, (str, int)) or not isinstance(encoding, str) or not hasattr(out_file, "fileno"):
        return None
    try:
        fd = out_file.fileno()
        opened = os.fstat(fd)
    except (OSError, ValueError, AttributeError):
        return None
    if not stat.S_ISREG(opened.st_mode):
        return None
    candidates = [os.path.realpath(name)] if isinstance(name, str) else []  # open(fd) is named by fd
    try:
        candidates.append(os.readlink(f"/proc/self/fd/{fd}"))  # Linux: the path of the open file itself
    except OSError:
        pass
    for path in candidates:
        try:
            found = os.stat(path)
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (opened.st_dev, opened.st_ino):
            return (path, encoding, getattr(out_file, "errors", None) or "strict")
    return None


class LogObserverError(OSError):
    """A log observer's file cannot be reopened (when an observer saved in a ``.tap`` is loaded)."""


class FileLogObserver:
    """An observer writing formatted lines to a file (text or JSON); installed through :attr:`handler`.

    Calling it with an event ``dict`` writes that event too. Saved in a
    ``.tap`` without its open file: ``sys.stdout``/``sys.stderr`` by name, a
    :class:`~twistdlite.logfile.LogFile` as itself, and a plain file the
    ``.tac`` opened (``open("log.json", "a")``) by its absolute path,
    encoding and errors, reopened for appending (never truncated, never
    through a symbolic link) when the ``.tap`` is loaded.
    """

    def __init__(self, outFile: Any, formatter: logging.Formatter) -> None:
        self.outFile = outFile
        self.formatter = formatter
        self._named = _named_file(outFile)
        self.handler = _stream_handler_for(outFile)
        self.handler.setFormatter(formatter)
        report_errors_once(self.handler, getattr(outFile, "name", None) or repr(outFile))

    def __call__(self, event: dict) -> None:
        """Write one event."""
        self.handler.handle(record_from_event(event))

    def rotate(self) -> None:
        """Rotate the file, when it can rotate (a LogFile or DailyLogFile)."""
        rotate = getattr(self.outFile, "rotate", None)
        if rotate is not None:
            rotate()

    def reopen(self) -> None:
        """Reopen the file at its path, when it can (a LogFile or DailyLogFile)."""
        reopen = getattr(self.outFile, "reopen", None)
        if reopen is not None:
            reopen()

    def __getstate__(self) -> dict:
        """Pickled (in a ``.tap``) without open streams: stdout/stderr by name, a plain file by path."""
        for name in ("stdout", "stderr"):  # saved by name: a stream cannot be pickled
            if self.outFile is getattr(sys, name) or self.outFile is getattr(sys, f"__{name}__"):
                return {"stdio": name, "formatter": self.formatter}
        if self._named is not None:  # open("j.log", "a"): reopened for appending when loaded
            path, encoding, errors = self._named
            return {"path": path, "mode": "a", "encoding": encoding, "errors": errors,
                    "formatter": self.formatter}
        return {"outFile": self.outFile, "formatter": self.formatter}

    def __setstate__(self, state: dict) -> None:
        """Reopen what :meth:`__getstate__` saved; :class:`LogObserverError` if a file cannot be reopened."""
        named = None
        if "stdio" in state:
            out_file = getattr(sys, f"__{state['stdio']}__")
        elif "path" in state:
            named = (state["path"], state.get("encoding") or "utf-8", state.get("errors") or "strict")
            out_file = _reopen(*named)
        else:
            out_file = state["outFile"]
        self.__init__(out_file, state["formatter"])  # type: ignore[misc]
        if named is not None:
            self._named = named  # the reopened stream is named by its descriptor: keep the path

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {type(self.formatter).__name__} to {self.outFile!r}>"


def _reopen(path: str, encoding: str, errors: str) -> TextIO:
    """Open a saved observer's file again, for appending, never through a symbolic link."""
    import errno

    from twistdlite.logfile import open_log_stream

    try:
        return open_log_stream(path, encoding=encoding, errors=errors)
    except OSError as exc:
        reason = ("it is a symbolic link (not followed)" if exc.errno == errno.ELOOP
                  else exc.strerror or str(exc))
        raise LogObserverError(f"cannot reopen the log observer's file {path}: {reason}") from None


def textFileLogObserver(outFile: TextIO, timeFormat: str = "%Y-%m-%dT%H:%M:%S%z") -> FileLogObserver:
    """An observer writing twistd's text lines (``<time> [system] message``) to ``outFile``.

    ``outFile`` is any text file object, or a :class:`twistdlite.logfile.LogFile`
    / ``DailyLogFile`` (which then rotates as it is written).
    """
    return FileLogObserver(outFile, TwistdFormatter(timeFormat))


def jsonFileLogObserver(outFile: TextIO) -> FileLogObserver:
    """An observer writing one JSON object per line to ``outFile`` (see :class:`JSONFormatter`)."""
    return FileLogObserver(outFile, JSONFormatter())


def handler_for(observer: Any) -> logging.Handler:
    """The ``logging.Handler`` that delivers records to ``observer`` (``TypeError`` if it is none of the three shapes)."""
    if isinstance(observer, logging.Handler):
        if observer.formatter is None:
            observer.setFormatter(TwistdFormatter())
        return observer
    handler = getattr(observer, "handler", None)
    if isinstance(handler, logging.Handler):
        return handler
    if callable(observer):
        return ObserverHandler(observer)
    raise TypeError(f"{type(observer).__name__} is not a log observer "
                    "(a callable taking an event dict, or a logging.Handler)")
