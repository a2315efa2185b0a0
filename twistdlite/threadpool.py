"""A bounded pool of worker threads, mirroring ``twisted.python.threadpool.ThreadPool``.

The reactor's pool (``reactor.getThreadPool()``) is one of these; it runs
``reactor.callInThread`` and ``threads.deferToThread`` calls. Threads are
started on demand up to ``max`` and are daemon threads: a call that never
returns cannot keep a stopping daemon alive past ``--shutdown-timeout``
(``concurrent.futures.ThreadPoolExecutor`` joins its threads at exit, which is
why it is not used here).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Optional

__all__ = ["ThreadPool"]

log = logging.getLogger("twistdlite")

_STOP = object()


class ThreadPool:
    """Run callables in up to ``maxthreads`` worker threads: ``start``, ``callInThread``, ``stop``.

    Work submitted before :meth:`start` waits for it. A call that raises is
    logged with its traceback and the pool goes on; with
    :meth:`callInThreadWithCallback` the outcome goes to ``onResult(success,
    result_or_failure)`` instead.
    """

    def __init__(self, minthreads: int = 5, maxthreads: int = 20, name: Optional[str] = None) -> None:
        if minthreads < 0:
            raise ValueError("minimum is negative")
        if minthreads > maxthreads:
            raise ValueError("minimum is greater than maximum")
        self.min = minthreads
        self.max = maxthreads
        self.name = name
        self.started = False
        self.joined = False
        self.threads: list[threading.Thread] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._waiting = 0  # jobs queued and not yet taken
        self._count = 0

    # -- state -----------------------------------------------------------------------------
    @property
    def workers(self) -> int:
        """How many worker threads exist."""
        return len(self.threads)

    def __getstate__(self) -> dict:
        return {"min": self.min, "max": self.max, "name": self.name}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["min"], state["max"], state.get("name"))  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"<ThreadPool {self.name or ''} {len(self.threads)}/{self.max} threads>"

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the minimum number of threads, and more for work already queued."""
        self.joined = False
        self.started = True
        with self._lock:
            wanted = max(self.min, min(self.max, self._waiting))
            for _ in range(wanted - len(self.threads)):
                self._spawn()

    def stop(self, timeout: float = 0.0) -> None:
        """Tell every worker to exit once its current call returns; wait up to ``timeout`` seconds for them."""
        self.joined = True
        self.started = False
        with self._lock:
            threads = list(self.threads)
            for _ in threads:
                self._queue.put(_STOP)
        if timeout > 0:
            import time

            deadline = time.monotonic() + timeout
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join(max(0.0, deadline - time.monotonic()))

    def adjustPoolsize(self, minthreads: Optional[int] = None, maxthreads: Optional[int] = None) -> None:
        """Change the bounds (``ValueError`` if the minimum would exceed the maximum)."""
        minthreads = self.min if minthreads is None else minthreads
        maxthreads = self.max if maxthreads is None else maxthreads
        if minthreads < 0:
            raise ValueError("minimum is negative")
        if minthreads > maxthreads:
            raise ValueError("minimum is greater than maximum")
        with self._lock:
            self.min, self.max = minthreads, maxthreads
            if not self.started:
                return
            for _ in range(len(self.threads) - self.max):
                self._queue.put(_STOP)  # extra threads exit once they finish what they are doing
            wanted = max(self.min, min(self.max, self._waiting))
            for _ in range(wanted - len(self.threads)):
                self._spawn()

    # -- work ------------------------------------------------------------------------------
    def callInThread(self, func: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``func(*args, **kw)`` in a worker thread (an exception it raises is logged)."""
        self.callInThreadWithCallback(None, func, *args, **kw)

    def callInThreadWithCallback(self, onResult: Optional[Callable[[bool, Any], Any]],
                                 func: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``func(*args, **kw)`` in a worker thread, then ``onResult(True, result)`` or ``onResult(False, failure)``.

        ``onResult`` runs in the worker thread too.
        """
        if self.joined:
            raise RuntimeError("the thread pool has been stopped")
        with self._lock:
            self._waiting += 1
            self._queue.put((onResult, func, args, kw))
            if self.started and self._idle < self._waiting and len(self.threads) < self.max:
                self._spawn()

    def _spawn(self) -> None:
        self._count += 1
        name = f"PoolThread-{self.name or id(self)}-{self._count}"
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                with self._lock:
                    self._idle += 1
                job = self._queue.get()
                with self._lock:
                    self._idle -= 1
                    if job is not _STOP:
                        self._waiting -= 1
                if job is _STOP:
                    return
                self._run(*job)
                del job
        finally:
            with self._lock:
                if me in self.threads:
                    self.threads.remove(me)

    @staticmethod
    def _run(onResult: Optional[Callable[[bool, Any], Any]], func: Callable[..., Any], args: tuple,
             kw: dict) -> None:
        from twistdlite.failure import Failure

        try:
            result = func(*args, **kw)
            success = True
        except BaseException:
            success = False
            if onResult is None:
                log.exception("Unhandled error in a thread pool call to %s", _name(func))
                return
            result = Failure()
        if onResult is None:
            return
        try:
            onResult(success, result)
        except BaseException:
            log.exception("Unhandled error in the result callback of a thread pool call to %s", _name(func))


def _name(func: Any) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}.{qualname}" if module else qualname
