"""Log files that rotate: :class:`LogFile` by size, :class:`DailyLogFile` by date.

Mirrors ``twisted.python.logfile`` over the standard library's
``logging.handlers``: the renaming of rotated files is
``RotatingFileHandler``'s and ``TimedRotatingFileHandler``'s, the "was the
file moved away?" check is ``WatchedFileHandler``'s. Both classes are
file-like (``write``, ``flush``, ``close``) and add ``rotate()`` and
``reopen()``; each carries the ``logging.Handler`` that writes its file as
:attr:`LogFile.handler`, so ``logging`` can write to it directly.

A :class:`LogFile` named ``app.log`` rotates to ``app.log.1`` (then
``app.log.2``, ...; the highest number is the oldest), keeping at most
``maxRotatedFiles`` of them (``None``: keep them all, as Twisted does). A
:class:`DailyLogFile` rotates at local midnight to ``app.log.YYYY-MM-DD``
(the standard library's naming; Twisted's is ``app.log.YYYY_M_D``).

Files are opened with ``O_APPEND`` (so a ``logrotate copytruncate`` leaves a
working log) and ``O_NOFOLLOW`` (a symbolic link planted at the log's path is
refused, not followed). Text is written as UTF-8; what cannot be encoded
(lone surrogates from undecodable bytes) is written backslash-escaped.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import stat
import time
from typing import Any, Optional, TextIO

__all__ = ["LogFile", "DailyLogFile", "RotatingLogHandler", "DailyLogHandler", "open_log_stream"]

_OPEN_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_APPEND
               | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))

ENCODING = "utf-8"
ERRORS = "backslashreplace"


def open_log_stream(path: str, mode: Optional[int] = None, encoding: str = ENCODING,
                    errors: str = ERRORS) -> TextIO:
    """Open ``path`` for appending text, never through a symbolic link (``OSError`` on failure).

    ``mode``, when given, is set on a file this call creates (else 0666 less the umask).
    """
    created = mode is not None and not os.path.lexists(path)
    fd = os.open(path, _OPEN_FLAGS, 0o666)
    try:
        if created:
            os.fchmod(fd, mode)  # type: ignore[arg-type]
        return open(fd, "a", encoding=encoding, errors=errors)
    except BaseException:
        os.close(fd)
        raise


class _LogHandlerMixin:
    """What both handlers add to the stdlib's: safe opening, reopen-if-moved, regular-file checks."""

    baseFilename: str
    stream: Any
    encoding: Optional[str]
    errors: Optional[str]
    defaultMode: Optional[int] = None
    dev = ino = -1
    regular = True

    # WatchedFileHandler's "has the file at our path changed?" logic, reused as is.
    reopenIfNeeded = logging.handlers.WatchedFileHandler.reopenIfNeeded
    _statstream_stdlib = logging.handlers.WatchedFileHandler._statstream

    def _open(self) -> TextIO:
        return open_log_stream(self.baseFilename, self.defaultMode, self.encoding or ENCODING,
                               self.errors or ERRORS)

    def _statstream(self) -> None:
        self._statstream_stdlib()
        if self.stream is not None:
            self.regular = stat.S_ISREG(os.fstat(self.stream.fileno()).st_mode)

    def moved(self) -> bool:
        """True when the file at our path is no longer the one we write (moved or deleted)."""
        try:
            found = os.stat(self.baseFilename)
        except FileNotFoundError:
            return True
        return (found.st_dev, found.st_ino) != (self.dev, self.ino)

    def reopen(self) -> None:
        """Reopen the file at its path (after an external tool moved it).

        The new file is opened first: when that fails (a run directory the
        process may no longer write to, after dropping privileges), the
        ``OSError`` propagates and logging goes on into the file already open.
        """
        self.acquire()  # type: ignore[attr-defined]
        try:
            new = self._open()
            stream, self.stream = self.stream, new
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass  # what could not be flushed (a full disk) is lost, not fatal
            self._statstream()
            self._opened()
        finally:
            self.release()  # type: ignore[attr-defined]

    def rotation_problem(self) -> Optional[str]:
        """Why this process may not rotate the file (rename it and create a new one), or None.

        Asked before rotating, as Twisted's ``LogFile`` does: once a daemon has
        dropped privileges, a log file and run directory opened as root are
        often out of its reach, and a half-done rotation would leave no file to write.
        """
        directory = os.path.dirname(os.path.abspath(self.baseFilename))
        effective = os.access in os.supports_effective_ids
        for path, need in ((directory, os.W_OK | os.X_OK), (self.baseFilename, os.W_OK)):
            if os.path.exists(path) and not os.access(path, need, effective_ids=effective):
                return f"{path} is not writable by uid {os.geteuid()}"
        return None

    def _notice(self, message: str) -> str:
        """A line saying ``message``, formatted as this handler formats records."""
        record = logging.LogRecord("twistdlite", logging.ERROR, __file__, 0, message, None, None)
        return self.format(record) + self.terminator  # type: ignore[attr-defined]

    def rotate_now(self) -> None:
        """Rotate now (SIGUSR1); if the file was moved away by an external tool, just reopen it.

        (Not ``rotate``: the stdlib's rotating handlers use that name for renaming one file.)
        """
        self.acquire()  # type: ignore[attr-defined]
        try:
            if self.stream is not None and self.moved():
                self.reopen()
            elif self.regular:
                self.doRollover()  # type: ignore[attr-defined]
        finally:
            self.release()  # type: ignore[attr-defined]

    def _opened(self) -> None:
        """Hook: the stream was (re)opened."""

    def close(self) -> None:
        """Close the file; a failure to flush its last bytes (a full disk) is not an error."""
        try:
            super().close()  # type: ignore[misc]
        except OSError:
            pass


class RotatingLogHandler(_LogHandlerMixin, logging.handlers.RotatingFileHandler):
    """``RotatingFileHandler`` that keeps a running size instead of re-formatting and seeking per record.

    ``maxBytes`` 0 never rotates by size; ``backupCount`` ``None`` keeps every
    rotated file (``name.1`` ... ``name.N`` with N growing). The size is
    counted in encoded bytes written (``len(text)`` for ASCII text, the
    common case) and checked against the file (``fstat``) before rotating, so
    a file truncated behind our back (``copytruncate``) never causes a
    premature rotation and non-ASCII text never takes a file past
    ``maxBytes``. Only regular files rotate (never ``/dev/null`` or a FIFO).
    """

    def __init__(self, filename: str, maxBytes: int = 0, backupCount: Optional[int] = None,
                 encoding: str = ENCODING, errors: str = ERRORS, defaultMode: Optional[int] = None) -> None:
        self.defaultMode = defaultMode
        self.keep_all = not backupCount
        self.size = 0
        logging.handlers.RotatingFileHandler.__init__(
            self, filename, mode="a", maxBytes=maxBytes, backupCount=backupCount or 0,
            encoding=encoding, delay=False, errors=errors)
        self._statstream()
        self._opened()

    def _opened(self) -> None:
        self.size = os.fstat(self.stream.fileno()).st_size if self.stream is not None else 0

    def emit(self, record: logging.LogRecord) -> None:
        """Format, rotate if the line would overflow the file, write, flush."""
        try:
            self.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write(self, text: str) -> None:
        """Append ``text``, rotating first if it would take the file past ``maxBytes``."""
        stream = self.stream
        if stream is None:
            stream = self.stream = self._open()
            self._statstream()
            self._opened()
        if self.maxBytes:
            length = self.encoded_length(text)
            if self.size + length > self.maxBytes and self.regular:
                self.size = os.fstat(stream.fileno()).st_size  # the truth, rarely asked for
                if self.size and self.size + length > self.maxBytes:
                    try:
                        self.doRollover()
                    except OSError as exc:  # keep writing where we are: a log never stops the service
                        self.maxBytes = 0
                        text = self._notice(f"Cannot rotate the log ({exc.strerror or exc}); "
                                            "rotation by size is off from now on") + text
                    stream = self.stream
            self.size += length
        stream.write(text)
        stream.flush()

    def encoded_length(self, text: str) -> int:
        """The number of bytes ``text`` takes in the file (its length, when it is ASCII)."""
        if text.isascii():
            return len(text)
        return len(text.encode(self.encoding or ENCODING, self.errors or ERRORS))

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` would take the file past ``maxBytes`` (from the running size)."""
        if not self.maxBytes or not self.regular:
            return False
        return self.size + self.encoded_length(self.format(record) + self.terminator) > self.maxBytes

    def doRollover(self) -> None:
        """Rename ``name`` to ``name.1`` (shifting older ones up) and start a new file.

        ``PermissionError`` (nothing touched) when :meth:`rotation_problem` says it cannot be done.
        """
        if not self.regular:
            return
        problem = self.rotation_problem()
        if problem is not None:
            raise PermissionError(errno.EACCES, problem)
        if self.keep_all:
            self.backupCount = highest_suffix(self.baseFilename) + 1
        try:
            logging.handlers.RotatingFileHandler.doRollover(self)
        finally:
            if self.keep_all:
                self.backupCount = 0
            if self.stream is None:
                self.stream = self._open()
            self._statstream()
            self._opened()


class DailyLogHandler(_LogHandlerMixin, logging.handlers.TimedRotatingFileHandler):
    """``TimedRotatingFileHandler`` rotating at local midnight, opened safely, reopenable.

    ``backupCount`` ``None`` keeps every dated file.
    """

    def __init__(self, filename: str, backupCount: Optional[int] = None, encoding: str = ENCODING,
                 errors: str = ERRORS, defaultMode: Optional[int] = None) -> None:
        self.defaultMode = defaultMode
        logging.handlers.TimedRotatingFileHandler.__init__(
            self, filename, when="midnight", backupCount=backupCount or 0, encoding=encoding,
            delay=False, errors=errors)
        self._statstream()

    def rotated_name(self) -> str:
        """The name the current file gets when it rotates."""
        return self.rotation_filename(
            self.baseFilename + "." + time.strftime(self.suffix, time.localtime(self.rolloverAt - self.interval)))

    def rotate_now(self) -> None:
        """Rotate now unless today's dated file already exists (then only reopen if moved)."""
        self.acquire()
        try:
            if self.stream is not None and self.moved():
                self.reopen()
            elif self.regular and not os.path.exists(self.rotated_name()):
                self.doRollover()
        finally:
            self.release()

    def doRollover(self) -> None:
        """Rename the file to its dated name and start a new one (``PermissionError`` if it may not)."""
        problem = self.rotation_problem()
        if problem is not None:
            self.rolloverAt = self.computeRollover(int(time.time()))  # try again at the next midnight
            raise PermissionError(errno.EACCES, problem)
        try:
            logging.handlers.TimedRotatingFileHandler.doRollover(self)
        finally:
            if self.stream is None:
                self.stream = self._open()
            self._statstream()

    def write(self, text: str) -> None:
        """Append ``text``, rotating first when a new day has begun."""
        if self.shouldRollover(None):  # type: ignore[arg-type]
            try:
                self.doRollover()
            except OSError as exc:
                text = self._notice(f"Cannot rotate the log ({exc.strerror or exc})") + text
        stream = self.stream
        if stream is None:
            stream = self.stream = self._open()
            self._statstream()
        stream.write(text)
        stream.flush()


def highest_suffix(path: str) -> int:
    """The highest N for which ``path.N`` exists (0 if none)."""
    directory, base = os.path.split(os.path.abspath(path))
    prefix = base + "."
    highest = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            highest = max(highest, int(name[len(prefix):]))
    return highest


class LogFile:
    """A log file that rotates when it reaches ``rotateLength`` bytes (``twisted.python.logfile.LogFile``).

    ``LogFile(name, directory, rotateLength=1000000, defaultMode=None, maxRotatedFiles=None)``:
    writes ``directory/name``; rotated files are ``name.1`` (newest) to ``name.N``;
    ``rotateLength`` 0 or None never rotates by size; ``maxRotatedFiles`` None keeps
    them all. ``OSError`` if the file cannot be opened.
    """

    def __init__(self, name: str, directory: str, rotateLength: Optional[int] = 1000000,
                 defaultMode: Optional[int] = None, maxRotatedFiles: Optional[int] = None) -> None:
        self.name = name
        self.directory = directory
        self.path = os.path.join(directory, name)
        self.rotateLength = rotateLength
        self.defaultMode = defaultMode
        self.maxRotatedFiles = maxRotatedFiles
        self.handler: logging.Handler = self._make_handler()

    @classmethod
    def fromFullPath(cls, filename: str, *args: Any, **kwargs: Any) -> "LogFile":
        """A log file for the full path ``filename``."""
        directory, name = os.path.split(os.path.abspath(filename))
        return cls(name, directory, *args, **kwargs)

    def _make_handler(self) -> logging.Handler:
        return RotatingLogHandler(self.path, maxBytes=self.rotateLength or 0,
                                  backupCount=self.maxRotatedFiles, defaultMode=self.defaultMode)

    # The file-like interface.
    def write(self, data: str) -> None:
        """Write ``data`` (``str``, or UTF-8 ``bytes``), rotating first when it is due."""
        if isinstance(data, bytes):
            data = data.decode(ENCODING, "surrogateescape")
        handler = self.handler
        handler.acquire()
        try:
            handler.write(data)  # type: ignore[attr-defined]
        finally:
            handler.release()

    def flush(self) -> None:
        """Flush what was written (each write is already flushed)."""
        self.handler.flush()

    def close(self) -> None:
        """Close the file; a later write reopens it."""
        self.handler.close()

    @property
    def closed(self) -> bool:
        """True when the file is not open."""
        return getattr(self.handler, "stream", None) is None

    def fileno(self) -> int:
        """The descriptor of the open file."""
        return self.handler.stream.fileno()  # type: ignore[attr-defined]

    # Rotation.
    def reopen(self) -> None:
        """Reopen the file at its path (after an external tool moved it)."""
        self.handler.reopen()  # type: ignore[attr-defined]

    def rotate(self) -> None:
        """Rotate now (or just reopen, if an external tool has already moved the file)."""
        self.handler.rotate_now()  # type: ignore[attr-defined]

    def shouldRotate(self) -> bool:
        """True when the file has reached ``rotateLength``."""
        return bool(self.rotateLength) and self.size >= self.rotateLength  # type: ignore[operator]

    @property
    def size(self) -> int:
        """The size of the current file in bytes."""
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def listLogs(self) -> list:
        """The numbers N of the rotated files ``name.N`` that exist, sorted."""
        prefix = self.name + "."
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(int(n[len(prefix):]) for n in names if n.startswith(prefix) and n[len(prefix):].isdigit())

    # Pickling (an Application's log observer is saved in its .tap): the open file is not kept.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("handler", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.handler = self._make_handler()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}>"


class DailyLogFile(LogFile):
    """A log file rotated at local midnight to ``name.YYYY-MM-DD`` (``twisted.python.logfile.DailyLogFile``).

    ``DailyLogFile(name, directory, defaultMode=None, maxRotatedFiles=None)``.
    ``rotate()`` (SIGUSR1) rotates at once unless today's dated file exists.
    """

    def __init__(self, name: str, directory: str, defaultMode: Optional[int] = None,
                 maxRotatedFiles: Optional[int] = None, **ignored: Any) -> None:
        super().__init__(name, directory, rotateLength=None, defaultMode=defaultMode,
                         maxRotatedFiles=maxRotatedFiles)

    def _make_handler(self) -> logging.Handler:
        return DailyLogHandler(self.path, backupCount=self.maxRotatedFiles, defaultMode=self.defaultMode)

    def shouldRotate(self) -> bool:
        """True when a new day has begun since the file was opened."""
        return time.time() >= self.handler.rolloverAt  # type: ignore[attr-defined]
