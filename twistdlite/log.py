"""The older logging API of ``twisted.python.log``: ``msg``, ``err``, ``startLogging``.

Lines go to the same twistd-format log as stdlib ``logging`` and
``twistdlite.logger.Logger``: ``log.msg("hello")`` is written
``<time> [-] hello`` (or with the connection's system inside a protocol
callback, as under twistd); ``log.err(failure, "why")`` writes ``why`` and the
traceback at the error level.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional, TextIO

from twistdlite.failure import Failure

__all__ = ["msg", "err", "deferr", "startLogging", "startLoggingWithObserver", "addObserver",
           "removeObserver", "textFromEventDict", "ILogObserver", "FileLogObserver"]

from twistdlite.logger import ILogObserver  # noqa: E402  (Twisted's log module exports it too)

#: The namespace of lines logged through this module (Twisted's name for it).
NAMESPACE = "log_legacy"


def textFromEventDict(eventDict: dict) -> Optional[str]:
    """The text of an old-style event: its ``message`` parts, its ``format``, or ``why`` and the failure."""
    message = eventDict.get("message")
    if isinstance(message, (tuple, list)) and message:
        return " ".join(map(str, message))
    if isinstance(message, str) and message:
        return message
    fmt = eventDict.get("format")
    if fmt is not None:
        try:
            return fmt % eventDict
        except Exception as exc:
            return f"Invalid format string or unformattable object in log message: {fmt!r}, {exc}"
    if eventDict.get("isError") and "failure" in eventDict:
        why = eventDict.get("why") or "Unhandled Error"
        failure = eventDict["failure"]
        traceback = failure.getTraceback() if hasattr(failure, "getTraceback") else str(failure)
        return f"{why}\n{traceback}"
    return None


def msg(*message: Any, **kw: Any) -> None:
    """Log ``message`` (its parts joined with spaces), or ``kw["format"] % kw``.

    ``isError=1`` logs at the error level; ``failure=`` adds its traceback;
    ``system=`` sets the system shown between brackets (default: the running
    connection's, else ``-``).
    """
    from twistdlite.logger import current_system

    is_error = bool(kw.get("isError"))
    level = logging.ERROR if is_error else logging.INFO
    target = logging.getLogger(NAMESPACE)
    if not target.isEnabledFor(level):
        return
    failure = kw.get("failure")
    if message:
        text = " ".join(map(str, message))
    elif "format" in kw:
        text = textFromEventDict(dict(kw)) or ""
    elif failure is not None:
        text = str(kw.get("why") or "Unhandled Error")
    else:
        text = ""
    exc_info = None
    if failure is not None:
        value = getattr(failure, "value", failure)
        if isinstance(value, BaseException):
            exc_info = (type(value), value, getattr(failure, "tb", None) or value.__traceback__)
    record = target.makeRecord(NAMESPACE, level, "(twistdlite.log)", 0, text, None, exc_info)
    system = kw.get("system") or current_system() or "-"
    record.system = str(system)  # type: ignore[attr-defined]
    event = dict(kw)
    event.update(message=message, isError=int(is_error), system=record.system, time=record.created)
    record.legacy_event = event  # type: ignore[attr-defined]
    target.handle(record)


def err(_stuff: Any = None, _why: Optional[str] = None, **kw: Any) -> None:
    """Log a failure (a Failure, an exception, or the one being handled when ``_stuff`` is None) with ``_why``."""
    if _stuff is None:
        _stuff = Failure()
    if isinstance(_stuff, Failure):
        msg(failure=_stuff, why=_why, isError=1, **kw)
    elif isinstance(_stuff, BaseException):
        msg(failure=Failure(_stuff), why=_why, isError=1, **kw)
    else:
        msg(repr(_stuff), why=_why, isError=1, **kw)


deferr = err


class _LegacyObserver:
    """Calls an old-style observer with old-style event dicts (``message`` a tuple, ``isError``, ``system``)."""

    def __init__(self, observer: Callable[[dict], Any]) -> None:
        self.observer = observer

    def __call__(self, event: dict) -> None:
        record = event.get("log_record")
        legacy = getattr(record, "legacy_event", None)
        if legacy is None:
            legacy = {"message": (event.get("message") or "",),
                      "isError": int(str(event.get("log_level")) in ("error", "critical")),
                      "system": event.get("log_system") or "-",
                      "time": event.get("log_time", time.time())}
        else:
            legacy = dict(legacy)
            if not legacy.get("message") and not legacy.get("format") and not legacy.get("failure"):
                # (an event of log.err keeps its empty message, so textFromEventDict gives
                # the 'why' line and the traceback, as Twisted's does)
                legacy["message"] = (event.get("message") or "",)
        self.observer(legacy)


_legacy: list = []  # (observer, adapter): bound methods are equal, not identical


def addObserver(observer: Callable[[dict], Any]) -> None:
    """Send every further log line, as an old-style event dict, to ``observer``."""
    from twistdlite.logger import globalLogPublisher

    if any(known == observer for known, _ in _legacy):
        return
    adapter = _LegacyObserver(observer)
    _legacy.append((observer, adapter))
    globalLogPublisher.addObserver(adapter)


def removeObserver(observer: Callable[[dict], Any]) -> None:
    """Stop sending log lines to ``observer``."""
    from twistdlite.logger import globalLogPublisher

    for index, (known, adapter) in enumerate(_legacy):
        if known == observer:
            del _legacy[index]
            globalLogPublisher.removeObserver(adapter)
            return


def startLoggingWithObserver(observer: Callable[[dict], Any], setStdout: int = 1) -> None:
    """Add an old-style ``observer`` (``setStdout`` is ignored: the launcher captures a daemon's stdio)."""
    addObserver(observer)


def startLogging(file: TextIO, *a: Any, **kw: Any) -> None:
    """Also write the log to ``file`` in twistd's format.

    Under the launcher, the log already goes to its destination; a file that is
    already written to (the foreground run's standard output) is not added a
    second time, so lines are never doubled.
    """
    from twistdlite.logger import globalLogPublisher, textFileLogObserver

    if hasattr(file, "last_resort"):  # a daemon's stdout, captured into the log already
        return
    for handler in logging.getLogger().handlers:
        if getattr(handler, "stream", None) is file:
            return
    globalLogPublisher.addObserver(textFileLogObserver(file))


class FileLogObserver:
    """Writes twistd's lines (``<time> [system] message``) to a file; ``emit`` is the observer.

    As in Twisted's howto: ``application.setComponent(ILogObserver,
    FileLogObserver(DailyLogFile("my.log", "/tmp")).emit)``, or a ``--logger``
    factory returning ``FileLogObserver(open(path, "w")).emit``. ``emit``
    takes the events twistdlite's observers get and old-style event dicts
    alike. Saved in a ``.tap`` as ``twistdlite.logger`` observers are (a
    LogFile as itself, a plain file by its path).
    """

    timeFormat: Optional[str] = None

    def __init__(self, f: TextIO) -> None:
        from twistdlite.logger import textFileLogObserver

        self.write = f.write
        self._observer = textFileLogObserver(f)

    def __getstate__(self) -> dict:
        return {"_observer": self._observer, "timeFormat": self.timeFormat}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.write = getattr(self._observer.outFile, "write", None)

    @property
    def handler(self) -> logging.Handler:
        """The ``logging.Handler`` writing the file (what the launcher installs)."""
        return self._observer.handler

    @property
    def outFile(self) -> Any:
        """The file written to."""
        return self._observer.outFile

    def rotate(self) -> None:
        """Rotate the file (a LogFile or DailyLogFile)."""
        self._observer.rotate()

    def reopen(self) -> None:
        """Reopen the file at its path (a LogFile or DailyLogFile)."""
        self._observer.reopen()

    def emit(self, eventDict: dict) -> None:
        """Write one event (a record-carrying event, or an old-style dict) as a twistd line."""
        record = eventDict.get("log_record")
        if not isinstance(record, logging.LogRecord):
            text = textFromEventDict(eventDict)
            if text is None:
                return
            level = logging.ERROR if eventDict.get("isError") else logging.INFO
            record = logging.LogRecord(NAMESPACE, level, "(twistdlite.log)", 0, text, None, None)
            record.created = float(eventDict.get("time") or record.created)
            record.system = str(eventDict.get("system") or "-")  # type: ignore[attr-defined]
        self._observer.handler.handle(record)

    def start(self) -> None:
        """Start observing every line logged."""
        from twistdlite.logger import globalLogPublisher

        globalLogPublisher.addObserver(self.emit)

    def stop(self) -> None:
        """Stop observing."""
        from twistdlite.logger import globalLogPublisher

        globalLogPublisher.removeObserver(self.emit)
