"""How a log line looks and which connection it names: the part of ``twistdlite.logger`` the launcher needs.

The launcher's handlers (``twistdlite.launch.logsetup``) and the transports
that mark the running connection (``_transport``, ``_datagram``) use these
without importing the rest of the logging API (observers, Twisted's ``Logger``),
which a run imports only when its application does. Everything here is
exported by :mod:`twistdlite.logger`, and documented there; the classes carry
that module's name (so a ``.tap`` names them ``twistdlite.logger.*``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Optional

__all__ = ["Mark", "SystemContext", "system_context", "current_system", "SystemFilter", "system_of",
           "TwistdFormatter", "SyslogFormatter", "SYSLOG_PRIORITIES", "syslog_priority", "JournalFormatter",
           "report_errors_once"]

_PUBLIC = "twistdlite.logger"  # where these are documented and exported: the classes' __module__


class Mark:
    """A running connection or port, as :data:`system_context` holds it: its ``system`` and ``thread``.

    Anything with these two attributes is a mark: a stream connection's
    adapter is its own mark (its ``system`` is built only when a line is
    logged); ``Mark`` is the plain one.
    """

    __module__ = _PUBLIC
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

    __module__ = _PUBLIC
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

    __module__ = _PUBLIC

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

    __module__ = _PUBLIC

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

    __module__ = _PUBLIC

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

    __module__ = _PUBLIC

    def format(self, record: logging.LogRecord) -> str:
        """Each line prefixed with the record's priority."""
        prefix = f"<{syslog_priority(record.levelno)}>"
        text = f"[{system_of(record)}] {record.getMessage().rstrip(chr(10))}"
        extra = self.details(record)
        if extra:
            text += "\n" + extra
        return prefix + text.replace("\n", "\n" + prefix + "\t")


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
