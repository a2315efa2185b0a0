"""Twisted's ``Logger`` API on stdlib ``logging`` (exported by ``twistdlite.logger``).

``log = Logger()`` (a module or class attribute) and ``log.info("x={x}", x=1)``
build a Twisted-style event ``dict``; the global publisher turns it into a
``logging.LogRecord`` on the logger named by the event's namespace and hands it
to ``logging``, so it lands in the same twistd-format log as every stdlib line
(system = the namespace, or the connection's system inside a protocol callback).
:data:`globalLogPublisher` ``.addObserver(observer)`` registers an observer for
every line logged, whichever API logged it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, Iterator, Optional

__all__ = [
    "LogLevel",
    "InvalidLogLevelError",
    "Logger",
    "LogPublisher",
    "LogBeginner",
    "globalLogPublisher",
    "globalLogBeginner",
    "formatEvent",
]


class _Level(str):
    """A log level: a ``str`` (``"info"``) that also has Twisted's ``name`` and orders by severity."""

    _order = {"debug": 0, "info": 1, "warn": 2, "error": 3, "critical": 4}

    @property
    def name(self) -> str:
        """The level's name (``"info"``)."""
        return str(self)

    def _rank(self, other: Any) -> int:
        if not isinstance(other, str) or other not in self._order:
            return NotImplemented  # type: ignore[return-value]
        return self._order[other]

    def __lt__(self, other: Any) -> bool:  # type: ignore[override]
        rank = self._rank(other)
        return NotImplemented if rank is NotImplemented else self._order[self] < rank

    def __le__(self, other: Any) -> bool:  # type: ignore[override]
        rank = self._rank(other)
        return NotImplemented if rank is NotImplemented else self._order[self] <= rank

    def __gt__(self, other: Any) -> bool:  # type: ignore[override]
        rank = self._rank(other)
        return NotImplemented if rank is NotImplemented else self._order[self] > rank

    def __ge__(self, other: Any) -> bool:  # type: ignore[override]
        rank = self._rank(other)
        return NotImplemented if rank is NotImplemented else self._order[self] >= rank

    __hash__ = str.__hash__

    def __repr__(self) -> str:
        return f"<LogLevel={self}>"

    def __reduce__(self) -> Any:
        return (LogLevel.levelWithName, (str(self),))


class InvalidLogLevelError(Exception):
    """Someone tried to use a level that is not one of :class:`LogLevel`'s."""


class LogLevel:
    """The log levels, as Twisted's: ``debug``, ``info``, ``warn``, ``error``, ``critical``."""

    debug = _Level("debug")
    info = _Level("info")
    warn = _Level("warn")
    error = _Level("error")
    critical = _Level("critical")

    @classmethod
    def levelWithName(cls, name: str) -> _Level:
        """The level called ``name`` (``ValueError`` if there is none)."""
        level = getattr(cls, name, None) if name in _Level._order else None
        if level is None:
            raise ValueError(f"no log level named {name!r}")
        return level

    @classmethod
    def iterconstants(cls) -> Iterator[_Level]:
        """The levels, least severe first."""
        return iter((cls.debug, cls.info, cls.warn, cls.error, cls.critical))


#: Twisted's level -> stdlib level, and back.
TO_STDLIB = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
             "error": logging.ERROR, "critical": logging.CRITICAL}
FROM_STDLIB = {logging.DEBUG: LogLevel.debug, logging.INFO: LogLevel.info, logging.WARNING: LogLevel.warn,
               logging.ERROR: LogLevel.error, logging.CRITICAL: LogLevel.critical}


def level_of(levelno: int) -> _Level:
    """The :class:`LogLevel` of a stdlib level number (the nearest one below it)."""
    found = FROM_STDLIB.get(levelno)
    if found is not None:
        return found
    for number in sorted(FROM_STDLIB, reverse=True):
        if levelno >= number:
            return FROM_STDLIB[number]
    return LogLevel.debug


_FORMATTER: Any = None


def _formatter() -> Any:
    """PEP 3101 formatting from an event, plus Twisted's ``{method()}`` (``string`` imported on first use)."""
    global _FORMATTER
    if _FORMATTER is None:
        import string

        class EventFormatter(string.Formatter):
            def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
                if field_name.endswith("()"):
                    value, first = super().get_field(field_name[:-2], args, kwargs)
                    return value(), first
                return super().get_field(field_name, args, kwargs)

        _FORMATTER = EventFormatter()
    return _FORMATTER


def formatEvent(event: dict) -> str:
    """The text of an event: its ``log_format`` rendered with the event's own keys (never raises)."""
    fmt = event.get("log_format")
    if fmt is None:
        text = event.get("message")
        return "" if text is None else str(text)
    try:
        return _formatter().vformat(str(fmt), (), event)
    except Exception as exc:
        return f"Unable to format event {fmt!r}: {type(exc).__name__}: {exc}"


def _traceback_of(failure: Any) -> Any:
    """``(type, value, traceback)`` of a Failure (or an exception), for a record's ``exc_info``."""
    value = getattr(failure, "value", failure)
    if not isinstance(value, BaseException):
        return None
    tb = getattr(failure, "tb", None)
    get_tb = getattr(failure, "getTracebackObject", None)
    if tb is None and callable(get_tb):
        try:
            tb = get_tb()
        except Exception:
            tb = None
    return (type(value), value, tb if tb is not None else value.__traceback__)


def record_for(event: dict) -> Optional[logging.LogRecord]:
    """The ``LogRecord`` carrying a Twisted-style event, or None when its logger would drop it."""
    namespace = str(event.get("log_namespace") or "log_legacy")
    level = TO_STDLIB.get(str(event.get("log_level") or "info"), logging.INFO)
    target = logging.getLogger(namespace)
    if not target.isEnabledFor(level):
        return None
    failure = event.get("log_failure")
    exc_info = _traceback_of(failure) if failure is not None else None
    record = target.makeRecord(namespace, level, "(twistdlite.logger)", 0, formatEvent(event), None, exc_info)
    if event.get("log_time") is not None:
        record.created = float(event["log_time"])
        record.msecs = (record.created % 1) * 1000
    system = event.get("log_system")
    if system:
        record.system = str(system)  # type: ignore[attr-defined]
    record.log_event = event  # type: ignore[attr-defined]
    return record


class LogPublisher:
    """Sends each event it is called with to its observers (``addObserver``/``removeObserver``)."""

    def __init__(self, *observers: Callable[[dict], Any]) -> None:
        self._observers = list(observers)

    @property
    def observers(self) -> list:
        """The observers, in the order added."""
        return list(self._observers)

    def addObserver(self, observer: Callable[[dict], Any]) -> None:
        """Send further events to ``observer`` too."""
        if not callable(observer):
            raise TypeError(f"Observer is not callable: {observer!r}")
        if observer not in self._observers:
            self._observers.append(observer)

    def removeObserver(self, observer: Callable[[dict], Any]) -> None:
        """Stop sending events to ``observer`` (nothing happens if it was not added)."""
        try:
            self._observers.remove(observer)
        except ValueError:
            pass

    def __call__(self, event: dict) -> None:
        """Send ``event`` to every observer; one that raises is logged and the others still get it."""
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                logging.getLogger("twistdlite").exception("Log observer %r failed", observer)


class _GlobalLogPublisher(LogPublisher):
    """The process's publisher: events go through ``logging``; its observers see every line logged.

    An observer added here is installed as a handler on the root logger (see
    ``twistdlite.logger.handler_for``), so it sees stdlib ``logging`` lines,
    ``twistdlite.log.msg`` lines and :class:`Logger` events alike; an event
    from a :class:`Logger` reaches it with all its own keys.
    """

    def __init__(self) -> None:
        super().__init__()
        self._handlers: list = []  # (observer, its handler); a list: bound methods are equal, not identical

    def addObserver(self, observer: Callable[[dict], Any]) -> None:
        """Install ``observer`` on the root logger (lets INFO through if the root level is still the default)."""
        if not callable(observer) and not hasattr(observer, "handler"):
            raise TypeError(f"Observer is not callable: {observer!r}")
        if any(known == observer for known, _ in self._handlers):
            return
        from twistdlite.logger import SystemFilter, handler_for

        handler = handler_for(observer)
        handler.addFilter(SystemFilter())
        root = logging.getLogger()
        if root.level == logging.WARNING:  # the stdlib default: let INFO through, as twistd does
            root.setLevel(logging.INFO)
        root.addHandler(handler)
        self._handlers.append((observer, handler))
        self._observers.append(observer)

    def removeObserver(self, observer: Callable[[dict], Any]) -> None:
        """Remove an observer :meth:`addObserver` installed."""
        for index, (known, handler) in enumerate(self._handlers):
            if known == observer:
                del self._handlers[index]
                logging.getLogger().removeHandler(handler)
                break
        else:
            return
        super().removeObserver(observer)

    def __call__(self, event: dict) -> None:
        """Log ``event`` through ``logging`` (on the logger named by its namespace)."""
        record = record_for(event)
        if record is not None:
            logging.getLogger(record.name).handle(record)


#: The publisher every :class:`Logger` sends to unless given another observer.
globalLogPublisher: LogPublisher = _GlobalLogPublisher()


class LogBeginner:
    """``globalLogBeginner.beginLoggingTo(observers)``: under twistdlite, adds the observers."""

    def __init__(self, publisher: LogPublisher) -> None:
        self._publisher = publisher

    def beginLoggingTo(self, observers: Any, discardBuffer: bool = False,
                       redirectStandardIO: bool = True) -> None:
        """Add each of ``observers`` to the global publisher (the launcher already logs to its destination)."""
        for observer in observers:
            self._publisher.addObserver(observer)


globalLogBeginner = LogBeginner(globalLogPublisher)


def _calling_module(depth: int) -> str:
    try:
        return str(sys._getframe(depth).f_globals.get("__name__", "<unknown>"))
    except ValueError:
        return "<unknown>"


class Logger:
    """Emits Twisted-style log events: ``log = Logger()``, then ``log.info("x={x}", x=1)``.

    ``namespace`` defaults to the calling module's name; a ``Logger`` that is a
    class attribute (a descriptor) takes ``module.ClassName`` as its namespace
    and the instance (or class) as ``log_source``. Events go to ``observer``
    (default: :data:`globalLogPublisher`, i.e. the run's log).
    """

    def __init__(self, namespace: Optional[str] = None, source: Any = None,
                 observer: Optional[Callable[[dict], Any]] = None) -> None:
        self.namespace = namespace if namespace is not None else _calling_module(2)
        self.source = source
        self.observer = observer if observer is not None else globalLogPublisher

    def __get__(self, instance: Any, owner: Optional[type] = None) -> "Logger":
        if owner is None:
            owner = type(instance)
        source = owner if instance is None else instance
        return type(self)(f"{owner.__module__}.{owner.__name__}", source, observer=self.observer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.namespace!r}>"

    def __reduce__(self) -> Any:
        observer = None if self.observer is globalLogPublisher else self.observer
        return (type(self), (self.namespace, self.source, observer))

    def emit(self, level: Any, format: Optional[str] = None, **kwargs: Any) -> None:
        """Send one event at ``level`` (a :class:`LogLevel`); ``format`` uses PEP 3101 fields from ``kwargs``."""
        if level not in _Level._order:
            self.failure("Got invalid log level {invalidLevel!r} in {logger}.emit().",
                         _failure(InvalidLogLevelError(level)), invalidLevel=level, logger=self)
            return
        event = kwargs
        event.update(log_logger=self, log_level=LogLevel.levelWithName(str(level)),
                     log_namespace=self.namespace, log_source=self.source, log_format=format,
                     log_time=time.time())
        self.observer(event)

    def failure(self, format: str, failure: Any = None, level: Any = LogLevel.critical, **kwargs: Any) -> None:
        """Log a Failure (the exception being handled when ``failure`` is None) with its traceback."""
        if failure is None:
            failure = _failure()
        self.emit(level, format, log_failure=failure, **kwargs)

    def debug(self, format: Optional[str] = None, **kwargs: Any) -> None:
        """Emit at the debug level."""
        self.emit(LogLevel.debug, format, **kwargs)

    def info(self, format: Optional[str] = None, **kwargs: Any) -> None:
        """Emit at the info level."""
        self.emit(LogLevel.info, format, **kwargs)

    def warn(self, format: Optional[str] = None, **kwargs: Any) -> None:
        """Emit at the warn level."""
        self.emit(LogLevel.warn, format, **kwargs)

    def error(self, format: Optional[str] = None, **kwargs: Any) -> None:
        """Emit at the error level."""
        self.emit(LogLevel.error, format, **kwargs)

    def critical(self, format: Optional[str] = None, **kwargs: Any) -> None:
        """Emit at the critical level."""
        self.emit(LogLevel.critical, format, **kwargs)


def _failure(exc: Optional[BaseException] = None) -> Any:
    from twistdlite.failure import Failure

    return Failure(exc)
