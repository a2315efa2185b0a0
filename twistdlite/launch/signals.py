"""The run's signal handlers: on its event loop, and outside it.

* :class:`LoopSignals` installs the handlers of the run (SIGTERM, SIGUSR1...)
  while its event loop runs: each signal calls its callback on the loop.
* Between detaching and the loop's own handlers, SIGTERM and SIGINT are
  remembered rather than fatal (the loop replays them: the run stops
  gracefully and removes its pidfile), SIGHUP and SIGUSR1 are ignored.
* :func:`deadline` bounds synchronous start-up code (``privilegedStartService``,
  the synchronous part of ``startService``) with ``SIGALRM``: when it
  expires, :class:`StartDeadline` is raised in the code that overran. The
  synchronous part of ``stopService`` is bounded the same way
  (:class:`StopDeadline`), and :func:`second_signal_interrupts` makes a
  SIGTERM/SIGINT during it (the second of the run) cut it short.

A handler that raises runs wherever the main thread is, and that may be a
weakref callback or a ``__del__`` whose exceptions Python prints ("Exception
ignored in ...") and drops. While these helpers are in effect, such a dropped
exception of ours is not printed: its signal is delivered again a moment
later, once the callback has returned, and lands in the interrupted code.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Callable, Iterator, Optional

#: Signals remembered before the loop handles them (they ask for a stop).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Signals ignored before the loop handles them (they only concern the log).
LOG_SIGNALS = (signal.SIGHUP, signal.SIGUSR1)

_received: list = []
#: How long after a dropped exception of ours its signal is delivered again (seconds).
_AGAIN = 0.001


def catch_early() -> None:
    """Remember SIGTERM/SIGINT and ignore SIGHUP/SIGUSR1 until the loop installs its handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, _remember)
    for signum in LOG_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _remember(signum: int, frame: Optional[FrameType]) -> None:
    _received.append(signum)


class LoopSignals:
    """The run's signal handlers while its event loop runs: each signal calls its callback on the loop.

    They are ``signal.signal`` handlers that hand the callback to the loop
    (``call_soon_threadsafe``, which wakes it), rather than
    ``loop.add_signal_handler``, whose every add and remove checks the number
    against ``signal.valid_signals()`` (~75 µs each: ~0.4 ms for the run's five
    at start, and again at stop). A signal the kernel delivers to another
    thread while the main one sleeps in the loop's poll still wakes it: a
    wakeup fd of our own (``signal.set_wakeup_fd``) is watched by the loop, so
    the main thread runs the handler at once. The same on asyncio's loop and
    on uvloop's (uvloop's own wakeup fd, which it sets while it runs, does the
    same: ours would hide it from a service's ``add_signal_handler``). Use it
    from the main thread, on the loop's thread.
    :meth:`restore` puts back the handlers and the wakeup fd found before.
    """

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.previous: dict = {}
        self.reader: Optional[socket.socket] = None
        self.writer: Optional[socket.socket] = None
        if type(loop).__module__.partition(".")[0] == "uvloop":
            # uvloop sets a wakeup fd of its own whenever it runs in the main thread, and on each wake runs
            # the Python handlers (ours among them); the handlers of its add_signal_handler (a service's) are
            # dispatched only from that fd's bytes: taking it over would leave them never called.
            return
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.old_wakeup = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        loop.add_reader(self.reader.fileno(), self._drain)

    def add(self, signum: int, callback: Callable[..., Any], *args: Any) -> None:
        """On ``signum``, call ``callback(*args)`` on the loop (from its next turn)."""
        call_soon = self.loop.call_soon_threadsafe

        def handler(number: int, frame: Optional[FrameType]) -> None:
            try:
                call_soon(callback, *args)
            except RuntimeError:  # the loop is closed (restore() not called): remembered as early ones are
                _received.append(number)

        previous = signal.signal(signum, handler)
        self.previous.setdefault(signum, signal.SIG_DFL if previous is None else previous)
        signal.siginterrupt(signum, False)  # as add_signal_handler: other threads' system calls are restarted

    def _drain(self) -> None:
        """The wakeup fd's bytes only wake the loop (the handlers have run by now): read them away."""
        try:
            while self.reader.recv(4096):
                pass
        except OSError:  # BlockingIOError: all read
            pass

    def close_in_child(self) -> None:
        """In a child forked while they were in effect: close its copies of the wakeup pair (no loop call)."""
        if self.reader is not None:
            self.reader.close()
            self.writer.close()

    def restore(self) -> None:
        """Put back the handlers and the wakeup fd found before; close our own (once)."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()
        if self.reader is None or self.reader.fileno() < 0:
            return
        signal.set_wakeup_fd(self.old_wakeup)
        if not self.loop.is_closed():
            self.loop.remove_reader(self.reader.fileno())
        self.reader.close()
        self.writer.close()


def take_early() -> list:
    """The stop signals received before the loop's handlers (and forget them)."""
    received = list(_received)
    del _received[:]
    return received


class StartDeadline(BaseException):
    """Raised into synchronous start-up code that overran ``--start-timeout``.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that a service's
    ``except Exception`` cannot swallow it. ``frame`` is where the code was.
    """

    def __init__(self, frame: Optional[FrameType]) -> None:
        super().__init__("start-up deadline exceeded")
        self.frame = frame


class StopDeadline(StartDeadline):
    """Raised into a synchronous ``stopService`` that overran ``--shutdown-timeout`` or was cut short.

    ``forced`` is True when a second SIGTERM/SIGINT cut it short.
    """

    def __init__(self, frame: Optional[FrameType], forced: bool = False, signum: int = 0) -> None:
        super().__init__(frame)
        self.args = ("shutdown deadline exceeded" if not forced else "stopped at once by a second signal",)
        self.forced = forced
        self.signum = signum


@contextmanager
def deadline(seconds: float, exception: type = StartDeadline) -> Iterator[None]:
    """Raise ``exception(frame)`` in the enclosed synchronous code once ``seconds`` have passed."""
    if seconds <= 0:
        raise exception(None)
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: no deadline elsewhere
        return

    def expired(signum: int, frame: Optional[FrameType]) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise exception(frame)

    def dropped(exc: BaseException) -> bool:
        if isinstance(exc, exception) and not getattr(exc, "forced", False):
            signal.setitimer(signal.ITIMER_REAL, _AGAIN)  # the deadline is still passed: again, outside the callback
            return True
        return False

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with _redelivered(dropped):
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def second_signal_interrupts() -> Iterator[None]:
    """While the enclosed synchronous code runs, SIGTERM/SIGINT raise :class:`StopDeadline` (forced) in it.

    The event loop cannot run its handlers while a synchronous ``stopService``
    blocks; this is how a second signal still stops the run at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    fired = []

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        if fired:  # once: a third signal must not interrupt the clean-up the second one set off
            return
        fired.append(signum)
        raise StopDeadline(frame, forced=True, signum=signum)

    def dropped(exc: BaseException) -> bool:
        if isinstance(exc, StopDeadline) and exc.forced:
            del fired[:]  # it did not interrupt the stop: deliver the signal again, outside the callback
            timer = threading.Timer(_AGAIN, signal.pthread_kill, (threading.main_thread().ident, exc.signum))
            timer.daemon = True
            timers.append(timer)
            timer.start()
            return True
        return False

    timers: list = []
    previous = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    try:
        with _redelivered(dropped):
            yield
    finally:
        for timer in timers:
            timer.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _redelivered(dropped: Callable[[BaseException], bool]) -> Iterator[None]:
    """While the block runs, an exception Python drops (raised in a weakref callback, a ``__del__``)
    goes to ``dropped`` first; when it returns True (one of ours, its signal raised again), nothing is printed."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        while isinstance(exc, StartDeadline):
            try:
                if dropped(exc):
                    return
                break
            except StartDeadline as again:  # delivered again while still here: once more
                exc = again
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
