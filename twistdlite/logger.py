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
from typing import Any, Callable, Optional, Protocol, TextIO, runtime_checkable

from twistdlite._loglines import (
    SYSLOG_PRIORITIES,
    JournalFormatter,
    Mark,
    SyslogFormatter,
    SystemContext,
    SystemFilter,
    TwistdFormatter,
    current_system,
    report_errors_once,
    syslog_priority,
    system_context,
    system_of,
)
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
