"""Start logging from the options: stdlib ``logging`` with twistd's line format.

Lines look like twistd's: ``2026-11-22T10:15:30+0000 [system] message``, where
the system is the record's ``system`` attribute (set for connection lines, e.g.
``ReverserProtocol,3,127.0.0.1``) or else the logger's name. Tracebacks are
indented under their line.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Optional

from twistdlite.launch.errors import StartError
from twistdlite.launch.options import DEFAULT_LOGFILE, Options


class TwistdFormatter(logging.Formatter):
    """Formats records as ``<ISO time> [system] message``, tracebacks indented."""

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.created))

    def format(self, record: logging.LogRecord) -> str:
        system = getattr(record, "system", None) or record.name
        message = record.getMessage()
        extra = ""
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            extra = record.exc_text
        if record.stack_info:
            extra = (extra + "\n" if extra else "") + self.formatStack(record.stack_info)
        stamp = self.formatTime(record)
        line = f"{stamp} [{system}] {message}"
        if extra:
            line += "\n" + "\n".join("\t" + part for part in extra.splitlines())
        return line


class LogSetup:
    """The logging this run set up: :meth:`reopen` on SIGUSR1/SIGHUP, :meth:`close` at exit."""

    def __init__(self, handler: logging.Handler, path: Optional[str]) -> None:
        self.handler = handler
        self.path = path

    def reopen(self) -> None:
        """Reopen the log file at its path (after an external rotation)."""
        if isinstance(self.handler, logging.FileHandler):
            self.handler.acquire()
            try:
                self.handler.close()
                self.handler.stream = self.handler._open()
            finally:
                self.handler.release()

    def close(self) -> None:
        """Detach and close the handler."""
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()


def log_path(options: Options) -> Optional[str]:
    """The log file this run writes, or None for stdout."""
    if options.logfile == "-":
        return None
    if options.logfile:
        return options.logfile
    return None if not options.daemonize else DEFAULT_LOGFILE


def start_logging(options: Options, application: Any = None, stream: Any = None) -> LogSetup:
    """Route the root logger to the run's destination; :class:`StartError` if it cannot be opened."""
    path = log_path(options)
    if path is None:
        handler: logging.Handler = logging.StreamHandler(stream or sys.stdout)
    else:
        try:
            handler = logging.FileHandler(path, encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            raise StartError(f"cannot open log file {os.path.abspath(path)}: {exc.strerror}") from None
    handler.setFormatter(TwistdFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    return LogSetup(handler, path)
