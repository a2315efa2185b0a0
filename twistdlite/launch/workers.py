"""``--workers N``: a supervised pool of pre-forked worker processes on shared listening sockets.

Steps 5-7 of the run (../shared/DESIGN.md), when the run is a pool:

5. The supervisor (the daemon, or the foreground process with ``-n``) runs
   ``privilegedStartService`` once, through a :class:`~twistdlite._ports.SocketShare`
   (so the listening sockets are bound once, as root if need be), drops
   privileges, and forks the workers. Each worker makes its own event loop
   and runs ``startService``: its ports serve on the inherited sockets.
6. The run is ready (the launching command exits 0, systemd hears
   ``READY=1``) when every worker has reported every service started; a
   worker's failed start fails the whole start with that worker's error.
7. The supervisor watches: a worker that dies is replaced after a capped,
   jittered exponential back-off; too many crashes within ``--crash-window``
   stop the pool (exit 1); a worker whose loop misses its heartbeats for
   ``--worker-timeout`` is killed and replaced. SIGTERM/SIGINT stop every
   worker (SIGKILL after ``--shutdown-timeout``); SIGHUP reloads the
   application into a new generation of workers and retires the old one once
   the new is ready; SIGTTIN/SIGTTOU add or remove a worker.

Why one shared socket (the kernel balancing ``accept`` among the workers)
rather than ``SO_REUSEPORT`` (one socket per worker): a connection waiting
in the queue of a shared socket is accepted by any other worker when the one
that would have taken it dies or retires, so a reload or a crash refuses and
resets nothing; with ``SO_REUSEPORT`` each queue belongs to one socket and
the connections waiting in it are reset when that socket closes. The shared
socket is also the only way to bind once as root before the privilege drop
and still add workers later. Measured (``benchmarks/bench_workers.py``, table
W3): with workers busy 1 ms per line, 32 clients churning connections through
a reload, a bare pool on one shared socket failed none, one on ``SO_REUSEPORT``
sockets reset about 1% of them. The price is balance: asyncio accepts a whole
burst per wake-up, so each worker accepts one connection at a time
(:func:`twistdlite._ports.share_accepts`), which took the busier worker's share
of a 50-connection closed loop from about 90% to about 53%.

Workers write no log file: each sends its records to the supervisor over its
channel (a socket pair), and the supervisor logs them with ``worker N`` in the
system field (and a ``worker`` attribute). One process writes the file, so
rotation (SIGUSR1) and reopening (SIGHUP) need no signal to the workers.

The same channel carries the worker's readiness, its start error and its
heartbeats (sent from its event loop, so a blocked loop falls silent); from
the supervisor it carries ``retire``. A worker dies with its supervisor:
``PR_SET_PDEATHSIG`` (SIGKILL) and, where that is missing, the end of the
channel it watches.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import random
import signal
import socket
import threading
import time
from typing import Any, Callable, Iterable, Optional

from twistdlite.launch import loader, privileges, signals
from twistdlite.launch.errors import LaunchError, StartError
from twistdlite.launch.options import Options

log = logging.getLogger("twistdlite")

#: The first replacement of a crashed worker waits about this long; each further one twice as long...
BACKOFF_BASE = 0.1
#: ... up to this.
BACKOFF_CAP = 10.0
#: Seconds beyond --shutdown-timeout (and --start-timeout) before a worker is killed.
GRACE = 1.0
#: How many connections a worker accepts per wake-up (asyncio's default is its whole backlog).
ACCEPT_BATCH = 1
#: /livez answers 503 once a serving worker has missed this many heartbeats (its loop is blocked), long
#: before --worker-timeout has it killed.
LIVE_MISSED_BEATS = 3
#: The suffix of the status file beside the pidfile (read by ``twistdlite status``).
STATUS_SUFFIX = ".workers"

_libc: Any = None


def preload() -> None:
    """Import now what the pool needs after ``--chroot`` and the privilege drop."""
    global _libc
    import ctypes

    from twistdlite import _ports, _unixsock, reactor, service  # noqa: F401
    from twistdlite.launch import health, runner  # noqa: F401

    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False


def pooled(options: Options) -> bool:
    """True when this run is a supervised pool: ``--workers`` above 1, or PID 1 (a container's first process).

    As PID 1 the run is a pool even of one worker: the supervisor then runs no
    application code once the worker is forked, so every other child it reaps
    is an orphan it adopted, never a process the application waits for.
    """
    return options.workers > 1 or (os.getpid() == 1 and not options.daemonize)


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``signum`` to this process when its parent dies (Linux ``prctl``)."""
    if not _libc:
        return False
    try:
        return _libc.prctl(1, int(signum), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    except Exception:
        return False


def backoff_delay(failures: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before replacing a worker that failed ``failures`` times in a row (capped, equal jitter)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, failures - 1))
    return ceiling / 2 + rand() * ceiling / 2


class CrashLimit:
    """Counts crashes in a sliding window: :meth:`record` is True once ``limit`` fall within ``window`` s."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.times: collections.deque = collections.deque()

    def record(self, now: float) -> bool:
        """Count a crash at ``now``; True when the limit is reached."""
        self.times.append(now)
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        return len(self.times) >= self.limit


def describe_exit(code: int) -> str:
    """How a worker's exit status reads in the log (``code`` as ``os.waitstatus_to_exitcode`` gives it)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def _walk(service: Any) -> Iterable[Any]:
    yield service
    if hasattr(service, "namedServices") and hasattr(service, "__iter__"):
        for child in list(service):
            yield from _walk(child)


def unshareable(application: Any) -> Optional[str]:
    """Why ``application`` cannot run in workers (a datagram service), or None."""
    from twistdlite import internet
    from twistdlite.service import IService

    datagram = (internet.UDPServer, internet.MulticastServer, internet.UNIXDatagramServer,
                internet.UNIXDatagramClient)
    for service in _walk(IService(application)):
        if isinstance(service, datagram):
            name = f" {service.name!r}" if getattr(service, "name", None) else ""
            return (f"--workers: the {type(service).__name__}{name} cannot be shared by workers (a datagram "
                    "socket has no accept to balance: each datagram would reach any worker, splitting a "
                    "peer's exchanges); run it without --workers")
    return None


def status_path(pidfile: str) -> str:
    """The status file of the pool whose pidfile is ``pidfile``."""
    return pidfile + STATUS_SUFFIX


class StatusFile:
    """The pool's state for ``twistdlite status``: JSON, rewritten in place (opened before the privilege drop)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: Optional[int] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.fchmod(self.fd, 0o644)

    def write(self, state: dict) -> None:
        """Replace the file's contents with ``state``."""
        if self.fd is None:
            return
        payload = json.dumps(state).encode()
        try:
            os.pwrite(self.fd, payload, 0)
            os.ftruncate(self.fd, len(payload))
        except OSError as exc:
            log.warning("Could not write the workers' status file %s: %s", self.path, exc.strerror)

    def remove(self) -> None:
        """Remove the file (or at least empty it) and close it."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
        os.close(self.fd)
        self.fd = None


def read_status(path: str) -> Optional[dict]:
    """The state a pool wrote at ``path``, or None (no file, or one being rewritten)."""
    for _ in range(5):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        try:
            found = json.loads(data)
        except ValueError:
            time.sleep(0.01)
            continue
        return found if isinstance(found, dict) else None
    return None


# -- the worker's side -----------------------------------------------------------------------------

class Channel:
    """The worker's end of its socket pair: JSON lines to the supervisor (thread-safe)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, message: dict) -> bool:
        """Send one message; False when the supervisor is gone."""
        data = (json.dumps(message) + "\n").encode()
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                return False
        return True


class ChannelReadiness:
    """A worker's readiness: reported to the supervisor over the channel."""

    closed_fds: tuple = ()

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.error: Optional[str] = None

    def ready(self) -> None:
        """Every service of this worker has started."""
        self.channel.send({"ready": 1})

    def failed(self, message: str) -> None:
        """Remember the first failure; :meth:`close` sends it."""
        if self.error is None:
            self.error = message or "start failed"

    def close(self) -> None:
        """Send a recorded failure."""
        if self.error is not None:
            self.channel.send({"error": self.error})
            self.error = None


class ForwardingHandler(logging.Handler):
    """A worker's only log handler: each record goes to the supervisor, which writes it."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self.channel = channel
        self.exceptions = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record's fields (message formatted, traceback as text)."""
        try:
            fields = {"name": record.name, "levelno": record.levelno, "levelname": record.levelname,
                      "msg": record.getMessage(), "created": record.created, "msecs": record.msecs,
                      "threadName": record.threadName, "process": record.process}
            if record.exc_info:
                fields["exc_text"] = self.exceptions.formatException(record.exc_info)
            elif record.exc_text:
                fields["exc_text"] = record.exc_text
            if record.stack_info:
                fields["stack_info"] = record.stack_info
            system = record.__dict__.get("system")
            if system:
                fields["system"] = str(system)
            self.channel.send({"log": fields})
        except Exception:
            self.handleError(record)


class _NoLogs:
    """A worker's log setup: the supervisor writes, rotates and reopens the file."""

    def rotate(self) -> None:
        """Nothing to rotate here."""

    def reopen(self) -> None:
        """Nothing to reopen here."""

    def close(self) -> None:
        """Nothing to close here."""


def _worker_serving_class() -> type:
    from twistdlite.launch.runner import Serving

    class WorkerServing(Serving):
        """Steps 5-7 in a worker: no privileged start (the supervisor did it), heartbeats, retirement."""

        channel: Channel
        beat_every: float = 1.0

        def _privileged_start(self, service: Any) -> None:
            """Done once, by the supervisor: the sockets are inherited, the privileges dropped."""

        def _install_signals(self, loop: asyncio.AbstractEventLoop) -> signals.LoopSignals:
            handlers = super()._install_signals(loop)
            self.buffer = b""
            loop.add_reader(self.channel.sock.fileno(), self._on_channel)
            self._beat()
            return handlers

        def _beat(self) -> None:
            self.channel.send({"beat": 1})
            asyncio.get_running_loop().call_later(self.beat_every, self._beat)

        def _on_channel(self) -> None:
            try:
                data = self.channel.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                os._exit(1)  # the supervisor is gone: never outlive it
            self.buffer += data
            *lines, self.buffer = self.buffer.split(b"\n")
            for line in lines:
                if line.strip() == b"retire":
                    asyncio.ensure_future(self._retire())

        async def _retire(self) -> None:
            """Stop accepting, let the open connections finish (bounded), then stop as on SIGTERM."""
            from twistdlite import _ports

            loop = asyncio.get_running_loop()
            ports = _ports.serving_ports()
            deadline = loop.time() + self.options.shutdown_timeout
            for port in ports:
                port.stopAccepting()
            while _accepting() and loop.time() < deadline:  # connections accepted are set up first
                await asyncio.sleep(0.005)
            for port in ports:
                port.stopListening()
            log.info("Retiring: stopped accepting; waiting for %d open connections to finish.",
                     sum(len(port.connections) for port in ports))
            while any(port.connections for port in ports) and loop.time() < deadline:
                await asyncio.sleep(0.02)
            if not self.stop_requested:
                self.stop_reason = "retirement"
                self.request_stop()

    return WorkerServing


def _accepting() -> bool:
    """True while connections the loop accepted are still being set up (asyncio runs that as tasks)."""
    return any(getattr(task.get_coro(), "__qualname__", "").endswith("_accept_connection2")
               for task in asyncio.all_tasks())


def run_worker(options: Options, application: Any, channel: Channel) -> int:
    """A worker's run: its own event loop, ``startService`` on the inherited sockets, until told to stop."""
    import inspect  # noqa: F401 - the runner's Serving needs it

    from twistdlite import reactor
    from twistdlite.launch import runner

    loop = runner.make_loop(options.reactor)
    asyncio.set_event_loop(loop)
    readiness = ChannelReadiness(channel)
    serving = _worker_serving_class()(options.evolve(no_save=True), application, readiness, _NoLogs(),
                                      None, None)
    serving.channel = channel
    serving.beat_every = max(0.05, min(1.0, options.worker_timeout / 4))
    main = loop.create_task(serving.serve())
    reactor.install(loop, stop_hook=serving.request_stop)
    try:
        return loop.run_until_complete(main)
    except LaunchError:
        return 1  # reported to the supervisor already
    except BaseException as exc:
        log.error("Worker failed", exc_info=True)
        readiness.failed(f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        readiness.close()
        reactor.uninstall()
        # The supervisor's SIGTERM may come now (after a failed start, at once): catch_early's handlers take it.
        runner.close_loop(loop)


# -- the supervisor's side ------------------------------------------------------------------------

class Worker:
    """The supervisor's record of one worker process."""

    def __init__(self, number: int, generation: int, pid: int, channel: socket.socket, load: Any,
                 application: Any) -> None:
        self.number = number
        self.generation = generation
        self.pid = pid
        self.channel = channel
        self.load = load
        self.application = application
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.beat = self.started
        self.state = "starting"  # serving, retiring, stopping, exited
        self.error: Optional[str] = None
        self.killed: Optional[str] = None
        self.buffer = b""
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.exited: asyncio.Future = asyncio.get_running_loop().create_future()

    def name(self) -> str:
        """``worker 2 (PID 1234)``."""
        return f"worker {self.number} (PID {self.pid})"


def emit_forwarded(fields: dict, number: int) -> None:
    """Log a record a worker forwarded, its system naming the worker."""
    record = logging.makeLogRecord(fields)
    system = fields.get("system")
    record.system = f"worker {number}" + (f",{system}" if system else
                                          ("" if record.name == "twistdlite" else f",{record.name}"))
    record.worker = number
    logging.getLogger(record.name).handle(record)


class Supervisor:
    """The pool: starts, watches, replaces, reloads and stops the workers (see the module's docstring)."""

    def __init__(self, options: Options, application: Any, readiness: Any, logs: Any,
                 uid: Optional[int], gid: Optional[int]) -> None:
        from twistdlite._ports import SocketShare

        self.options = options
        self.application = application
        self.readiness = readiness
        self.logs = logs
        self.uid = uid
        self.gid = gid
        self.count = options.workers
        self.share = SocketShare()
        self.load: Any = None
        self.loads: list = []            # every load whose workers may still run
        self.generation = 1
        self.workers: dict = {}          # pid -> Worker, every live worker
        self.slots: dict = {}            # number -> the current generation's Worker
        self.restarts: collections.Counter = collections.Counter()
        self.failures: collections.Counter = collections.Counter()
        self.crashes = CrashLimit(options.crash_limit, options.crash_window)
        self.last_error: Optional[str] = None
        self.code = 0
        self.is_ready = False
        self.reloading = False
        self.stop_reason = ""
        self.signals = 0
        self.me = os.getpid()
        self.status: Optional[StatusFile] = None
        self.health: Any = None
        self.notifier: Any = getattr(readiness, "notifier", None)
        self.stopping: asyncio.Event
        self.forced: asyncio.Event
        self.handlers: signals.LoopSignals

    # -- start ----------------------------------------------------------------------------------
    async def run(self) -> int:
        """Steps 5-7 for the pool; returns the exit status."""
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.forced = asyncio.Event()
        self.handlers = self._install_signals(loop)
        try:
            return await self._run(loop)
        finally:
            self.handlers.restore()

    async def _run(self, loop: asyncio.AbstractEventLoop) -> int:
        """:meth:`run`, its signal handlers installed."""
        from twistdlite.service import IService, release_privileged

        if self.options.pidfile:
            try:
                self.status = StatusFile(status_path(self.options.pidfile))
            except OSError as exc:
                log.warning("Could not open the workers' status file: %s", exc.strerror)
        try:
            await self._start_health()
            reason = unshareable(self.application)
            if reason is not None:
                raise StartError(reason)
            self.load = self._privileged_start(self.application, drop=True)
            self.loads.append(self.load)
            if not self.load.keys:
                release_privileged(IService(self.application))
                raise StartError("--workers: the application bound no listening stream socket in "
                                 "privilegedStartService, so there is nothing for workers to share "
                                 "(a client-only application?); run it without --workers")
            log.info("Starting %d workers (PID %d supervises them).", self.count, self.me)
            error = await self._start_generation(self.application, self.load, range(1, self.count + 1))
            if error is not None:
                raise StartError(error)
        except LaunchError as exc:
            log.error("Start-up failed: %s", exc)
            self.readiness.failed(str(exc))
            await self._stop_all("the failed start")
            self._release_all()
            raise
        except Exception as exc:
            log.error("Start-up failed", exc_info=True)
            message = f"start failed: {type(exc).__name__}: {exc}"
            self.readiness.failed(message)
            await self._stop_all("the failed start")
            self._release_all()
            raise StartError(message) from None
        self.is_ready = True
        log.info("All %d workers are ready.", self.count)
        self.readiness.ready()                                            # 6
        self._write_status()
        watch = loop.call_later(self._watch_every(), self._watch)
        pinger = self._watchdog(loop)  # systemd's WATCHDOG=1, from the supervisor's loop
        await self.stopping.wait()                                        # 7
        watch.cancel()
        if pinger is not None:
            pinger.stop()
        if self.notifier is not None and hasattr(self.notifier, "stopping"):
            self.notifier.stopping(self.stop_reason)
        code = max(self.code, await self._stop_all(self.stop_reason))
        self._release_all()
        if not self.options.no_save and not self.forced.is_set():
            from twistdlite.launch import persist

            log.info("Saving the application as the supervisor loaded it (state held in the workers "
                     "is not merged).")
            try:
                persist.save_shutdown_tap(self.application, self.options)
            except LaunchError as exc:
                log.error("%s", exc)
                code = 1
        log.info("Server Shut Down.")
        return code

    def _watchdog(self, loop: asyncio.AbstractEventLoop) -> Any:
        if self.notifier is None:
            return None
        from twistdlite.launch import notify

        pinger = notify.WatchdogPinger(self.notifier, loop)
        pinger.start()
        return pinger

    async def _start_health(self) -> None:
        if not self.options.health:
            return
        from twistdlite import _ports

        _ports.track_accepts()  # a probe connection accepted just before a fork must not live on in the worker
        from twistdlite.launch import health
        from twistdlite.service import maybe_await

        self.health = health.make_service(self.options.health, health.HealthState(self._live, self._ready))
        try:
            self.health.privilegedStartService()
            await maybe_await(self.health.startService())
        except Exception as exc:
            self.health = None
            raise StartError(f"--health {self.options.health}: {exc}") from None

    def _privileged_start(self, application: Any, drop: bool) -> Any:
        """privilegedStartService through the share (and drop privileges the first time); the load."""
        from twistdlite.launch import stacks
        from twistdlite.service import IService, release_privileged

        service = IService(application)
        try:
            with signals.deadline(self.options.start_timeout):
                with self.share.binding() as load:
                    service.privilegedStartService()
                if drop:
                    try:
                        privileges.drop(self.uid, self.gid, self.options.euid)
                    except BaseException:
                        release_privileged(service)
                        self.share.drop(load.new)
                        raise
        except signals.StartDeadline as exc:
            hung = stacks.service_in_frame(exc.frame)
            where = f" (still starting {stacks.describe(hung)})" if hung is not None else ""
            raise StartError(f"start timed out after {self.options.start_timeout:g} s{where}") from None
        except BaseException:
            self.share.drop(self.share.current.new)  # what this load bound first
            raise
        return load

    async def _start_generation(self, application: Any, load: Any, numbers: Iterable[int]) -> Optional[str]:
        """Fork a worker for each number; None once all are ready, else the first error."""
        started = [self._spawn(number, application, load) for number in numbers]
        pending = {worker.ready for worker in started} | {worker.exited for worker in started}
        stop = asyncio.ensure_future(self.stopping.wait())
        deadline = asyncio.get_running_loop().time() + self.options.start_timeout + GRACE
        try:
            while pending:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    late = [w for w in started if not w.ready.done()]
                    for worker in late:
                        self._kill(worker, f"did not start within {self.options.start_timeout:g} s")
                    return f"{late[0].name()} did not start within {self.options.start_timeout:g} s"
                done, pending = await asyncio.wait(pending | {stop}, timeout=remaining,
                                                   return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    return f"stopped by {self.stop_reason} before every worker had started"
                pending.discard(stop)
                for worker in started:
                    if worker.ready in done and worker.ready.result() is not None:
                        return f"{worker.name()}: {worker.ready.result()}"
                    if worker.exited in done:  # ready, then gone before the others were
                        return f"{worker.name()} {worker.killed or describe_exit(worker.exited.result())} " \
                               "before every worker had started"
                if not any(not worker.ready.done() for worker in started):
                    break
        finally:
            stop.cancel()
        return None

    def _spawn(self, number: int, application: Any, load: Any) -> Worker:
        parent_end, child_end = socket.socketpair()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            parent_end.close()
            child_end.close()
            raise
        if pid == 0:
            self._become_worker(number, application, load, child_end, parent_end, blocked)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child_end.close()
        parent_end.setblocking(False)
        generation = self.generation
        worker = Worker(number, generation, pid, parent_end, load, application)
        self.workers[pid] = worker
        self.slots[number] = worker
        asyncio.get_running_loop().add_reader(parent_end.fileno(), self._on_readable, worker)
        log.info("Started worker %d (PID %d)%s.", number, pid,
                 f", generation {generation}" if generation > 1 else "")
        self._write_status()
        return worker

    def _become_worker(self, number: int, application: Any, load: Any, sock: socket.socket,
                       parent_end: socket.socket, mask: Any) -> None:
        """In the forked child: cut every tie to the supervisor's loop, then run the worker; never returns."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)  # the supervisor's loop's pipe, shared: never write to it from here
            asyncio.events._set_running_loop(None)  # this child runs its own loop, not the parent's
            for signum in (signal.SIGCHLD, signal.SIGUSR2):
                signal.signal(signum, signal.SIG_DFL)
            for signum in (signal.SIGTTIN, signal.SIGTTOU):
                signal.signal(signum, signal.SIG_IGN)
            signals.catch_early()
            signals.take_early()  # what the supervisor had received is not this worker's
            set_parent_death_signal(signal.SIGKILL)
            try:
                os.setpgid(0, 0)  # a terminal's Ctrl-C (or kill %1) reaches the supervisor only, which stops us
            except OSError:
                pass
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            if os.getppid() != self.me:
                os._exit(1)  # the supervisor died before the death signal was set
            self._close_in_worker(load, parent_end)
            from twistdlite import _unixsock

            _unixsock.disown_files()  # the supervisor owns the socket files
            from twistdlite import _ports

            _ports.share_accepts(ACCEPT_BATCH)  # a burst of connections is spread over the workers
            if self.count > 1:  # a port bound in startService would be bound by every worker
                _ports.refuse_unshared_listening()
            channel = Channel(sock)
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
                try:
                    handler.close()
                except Exception:
                    pass
            from twistdlite.launch.logsetup import SYSTEM_FILTER

            forwarder = ForwardingHandler(channel)
            forwarder.addFilter(SYSTEM_FILTER)
            root.addHandler(forwarder)
            code = run_worker(self.options, application, channel)
        except BaseException:  # noqa: BLE001 - a worker must never return into the supervisor's code
            try:
                log.error("Worker %d failed", number, exc_info=True)
            except BaseException:
                pass
        finally:
            for stream in ("stdout", "stderr"):
                try:
                    getattr(__import__("sys"), stream).flush()
                except BaseException:
                    pass
            os._exit(code)

    def _close_in_worker(self, load: Any, parent_end: socket.socket) -> None:
        """Close the child's copies of what belongs to the supervisor (never through its loop)."""
        from twistdlite import _ports

        parent_end.close()
        self.handlers.close_in_child()  # the wakeup fd was unset by _become_worker
        for worker in self.workers.values():
            worker.channel.close()  # no epoll_ctl: the socket's own close only
        for sock in self.share.sockets():
            sock.close()
        for other in self.loads:
            if other is not load:
                other.close()
        if self.status is not None and self.status.fd is not None:
            os.close(self.status.fd)
            self.status.fd = None
        _ports.close_inherited()  # the health probe's socket and connections

    # -- messages from the workers ------------------------------------------------------------------
    def _on_readable(self, worker: Worker) -> None:
        try:
            data = worker.channel.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(worker.channel.fileno())
            return
        self._take(worker, data)

    def _take(self, worker: Worker, data: bytes) -> None:
        worker.buffer += data
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "log" in message:
                emit_forwarded(message["log"], worker.number)
            elif "beat" in message:
                worker.beat = time.monotonic()
            elif "ready" in message:
                worker.beat = time.monotonic()
                if worker.state == "starting":
                    worker.state = "serving"
                if not worker.ready.done():
                    worker.ready.set_result(None)
                if self.is_ready and worker.generation == self.generation:
                    log.info("Worker %d (PID %d) is ready.", worker.number, worker.pid)
                self._write_status()
            elif "error" in message:
                worker.error = str(message["error"])
                if not worker.ready.done():
                    worker.ready.set_result(worker.error)

    def _drain(self, worker: Worker) -> None:
        """Read what the worker sent before it exited (its error, its last lines)."""
        while True:
            try:
                data = worker.channel.recv(65536)
            except (BlockingIOError, InterruptedError, OSError):
                return
            if not data:
                return
            self._take(worker, data)

    # -- exits -----------------------------------------------------------------------------------------
    def _reap(self) -> None:
        """SIGCHLD: reap every exited child: workers, and orphans adopted as PID 1 (or as a subreaper)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                log.debug("Reaped orphaned process %d.", pid)
                continue
            self._exited(worker, os.waitstatus_to_exitcode(status))

    def _exited(self, worker: Worker, code: int) -> None:
        loop = asyncio.get_running_loop()
        self._drain(worker)
        loop.remove_reader(worker.channel.fileno())
        worker.channel.close()
        previous, worker.state = worker.state, "exited"
        if self.slots.get(worker.number) is worker:
            del self.slots[worker.number]
        why = worker.killed or describe_exit(code)
        if not worker.ready.done():
            worker.ready.set_result(worker.error or f"{why} before it was ready")
        if not worker.exited.done():
            worker.exited.set_result(code)
        self._write_status()
        if previous in ("stopping", "retiring") or self.stopping.is_set():
            if code == 0:
                log.info("Worker %d (PID %d) stopped.", worker.number, worker.pid)
            else:
                log.warning("Worker %d (PID %d) %s while stopping.", worker.number, worker.pid, why)
            return
        if not self.is_ready or worker.generation != self.generation or self.reloading and previous == "starting":
            return  # a start (or a reload's start) that failed: its waiter reports it
        message = f"Worker {worker.number} (PID {worker.pid}) {why}" + (
            f": {worker.error}" if worker.error else "")
        log.error("%s.", message)
        self.last_error = message
        now = time.monotonic()
        if self.crashes.record(now):
            log.error("Workers crashed %d times within %g s (--crash-limit, --crash-window): stopping "
                      "the pool. Last error: %s", self.options.crash_limit, self.options.crash_window, message)
            self.code = 1
            self._request_stop("too many worker crashes")
            return
        if now - worker.started > self.options.crash_window:
            self.failures[worker.number] = 0
        self.failures[worker.number] += 1
        delay = backoff_delay(self.failures[worker.number])
        log.info("Replacing worker %d in %.2f s.", worker.number, delay)
        loop.call_later(delay, self._replace, worker.number, worker.generation)

    def _replace(self, number: int, generation: int) -> None:
        if self.stopping.is_set() or generation != self.generation or number in self.slots \
                or number > self.count:
            return
        self.restarts[number] += 1
        try:
            self._spawn(number, self.application, self.load)
        except OSError as exc:
            log.error("Could not fork a worker: %s", exc)
            asyncio.get_running_loop().call_later(BACKOFF_CAP, self._replace, number, generation)

    def _kill(self, worker: Worker, why: str) -> None:
        worker.killed = f"{why}; killed with SIGKILL"
        log.error("Worker %d (PID %d) %s; killing it with SIGKILL.", worker.number, worker.pid, why)
        try:
            os.kill(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _watch_every(self) -> float:
        return max(0.05, min(1.0, self.options.worker_timeout / 4))

    def _watch(self) -> None:
        """Kill a worker whose loop has been silent beyond --worker-timeout, or whose start overran."""
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.killed is not None:
                continue
            if worker.state == "serving" and now - worker.beat > self.options.worker_timeout:
                self._kill(worker, f"sent no heartbeat for {now - worker.beat:.1f} s "
                                   f"(--worker-timeout {self.options.worker_timeout:g})")
            elif worker.state == "starting" and now - worker.started > self.options.start_timeout + GRACE:
                self._kill(worker, f"did not start within {self.options.start_timeout:g} s")
        asyncio.get_running_loop().call_later(self._watch_every(), self._watch)

    # -- stopping -------------------------------------------------------------------------------------
    def _request_stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self.stopping.set()

    async def _stop_all(self, reason: str) -> int:
        """SIGTERM every worker, SIGKILL those still running after --shutdown-timeout; 1 if any was killed."""
        code = 0
        for worker in list(self.workers.values()):
            if worker.state != "stopping":
                worker.state = "stopping"
                self._signal(worker, signal.SIGTERM)
        waiting = list(self.workers.values())
        if not waiting:
            return 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.shutdown_timeout + GRACE
        pending = {w.exited for w in waiting if not w.exited.done()}
        forced = asyncio.ensure_future(self.forced.wait())
        try:
            while pending and not self.forced.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                _, pending = await asyncio.wait(pending | {forced}, timeout=remaining,
                                                return_when=asyncio.FIRST_COMPLETED)
                pending.discard(forced)
        finally:
            forced.cancel()
        for worker in waiting:
            if not worker.exited.done():
                how = "was told to stop at once" if self.forced.is_set() else \
                    f"did not stop within {self.options.shutdown_timeout:g} s"
                log.error("Worker %d (PID %d) %s; killing it with SIGKILL.", worker.number, worker.pid, how)
                self._signal(worker, signal.SIGKILL)
                code = 1
            elif worker.exited.result() != 0:
                code = 1
        pending = [w.exited for w in waiting if not w.exited.done()]
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        return code

    def _signal(self, worker: Worker, signum: int) -> None:
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def _release_all(self) -> None:
        """Close the listening sockets (removing UNIX socket files) and the probe endpoint; remove the status file."""
        from twistdlite.service import IService, release_privileged

        release_privileged(IService(self.application))
        for load in self.loads:
            load.close()
        self.share.close()
        if self.health is not None:
            self.health.stopService()
            self.health = None
        if self.status is not None:
            self.status.remove()

    # -- signals ----------------------------------------------------------------------------------------
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> signals.LoopSignals:
        """The supervisor's handlers, on ``loop`` (:meth:`run` restores the previous ones at its end)."""
        handlers = signals.LoopSignals(loop)
        for signum in signals.STOP_SIGNALS:
            handlers.add(signum, self._on_stop_signal, signum)
        handlers.add(signal.SIGCHLD, self._reap)  # coalesced signals are one call: _reap reaps them all
        handlers.add(signal.SIGHUP, self._on_hup)
        handlers.add(signal.SIGUSR1, self._rotate)
        handlers.add(signal.SIGUSR2, self._forward, signal.SIGUSR2)
        handlers.add(signal.SIGTTIN, self._more)
        handlers.add(signal.SIGTTOU, self._fewer)
        for signum in signals.take_early():
            self._on_stop_signal(signum)
        return handlers

    def _on_stop_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.info("Received %s, stopping %d workers.", name, len(self.workers))
            self._request_stop(name)
        elif not self.forced.is_set():
            log.warning("Received %s again, stopping the workers at once.", name)
            self.forced.set()
            for worker in list(self.workers.values()):
                self._signal(worker, signal.SIGKILL)

    def _rotate(self) -> None:
        log.info("Received SIGUSR1, rotating the log.")  # the workers write through the supervisor
        rotate = getattr(self.logs, "rotate", None) or self.logs.reopen
        rotate()

    def _forward(self, signum: int) -> None:
        for worker in list(self.workers.values()):
            self._signal(worker, signum)

    def _on_hup(self) -> None:
        self.logs.reopen()
        log.info("Received SIGHUP, reopened the log; reloading the application.")
        if self.reloading:
            log.warning("A reload is already in progress; this SIGHUP only reopened the log.")
            return
        if not self.is_ready or self.stopping.is_set():
            return
        asyncio.ensure_future(self._reload())

    def _more(self) -> None:
        if not self.is_ready or self.stopping.is_set() or self.reloading:
            log.info("Received SIGTTIN while starting, reloading or stopping: ignored.")
            return
        self.count += 1
        log.info("Received SIGTTIN: adding worker %d.", self.count)
        self._spawn(self.count, self.application, self.load)

    def _fewer(self) -> None:
        if not self.is_ready or self.stopping.is_set() or self.reloading:
            log.info("Received SIGTTOU while starting, reloading or stopping: ignored.")
            return
        if self.count <= 1:
            log.info("Received SIGTTOU: one worker left, none removed.")
            return
        number = self.count
        self.count -= 1
        worker = self.slots.pop(number, None)
        log.info("Received SIGTTOU: retiring worker %d.", number)
        if worker is not None:
            self._retire(worker)
        self._write_status()

    def _retire(self, worker: Worker) -> None:
        """Ask a worker to stop accepting, finish its connections and stop; SIGKILL if it overstays."""
        worker.state = "retiring"
        try:
            worker.channel.send(b"retire\n")
        except OSError:
            self._signal(worker, signal.SIGTERM)
        limit = 2 * self.options.shutdown_timeout + GRACE

        def overstayed() -> None:
            if not worker.exited.done():
                self._kill(worker, f"did not retire within {limit:g} s")

        asyncio.get_running_loop().call_later(limit, overstayed)

    # -- reload ---------------------------------------------------------------------------------------
    async def _reload(self) -> None:
        """Load the application again, start a new generation, retire the old one once the new is ready."""
        from twistdlite.service import IService, release_privileged

        self.reloading = True
        if self.notifier is not None and hasattr(self.notifier, "reloading"):
            self.notifier.reloading()
        old_slots = dict(self.slots)
        try:
            try:
                application = loader.load(self.options)
                reason = unshareable(application)
                if reason is not None:
                    raise LaunchError(reason)
                load = self._privileged_start(application, drop=False)
            except LaunchError as exc:
                if exc.detail:
                    log.error("%s", exc.detail.rstrip("\n"))
                jail = f" (read inside --chroot {self.options.chroot})" if self.options.chroot else ""
                log.error("Reload failed: %s%s; the running workers keep serving.", exc, jail)
                return
            except Exception as exc:
                log.error("Reload failed: %s: %s; the running workers keep serving.", type(exc).__name__, exc,
                          exc_info=True)
                return
            self.loads.append(load)
            self.generation += 1
            log.info("Starting generation %d: %d workers.", self.generation, self.count)
            error = await self._start_generation(application, load, range(1, self.count + 1))
            if error is not None:
                new = [w for w in self.workers.values() if w.generation == self.generation]
                self.generation -= 1
                self.slots = dict(old_slots)
                log.error("Reload failed: %s; the running workers keep serving.", error)
                for worker in new:
                    worker.state = "stopping"
                    self._signal(worker, signal.SIGTERM)
                await asyncio.wait([w.exited for w in new], timeout=self.options.shutdown_timeout + GRACE)
                for worker in new:
                    if not worker.exited.done():
                        self._kill(worker, "did not stop after a failed reload")
                release_privileged(IService(application))
                self.loads.remove(load)
                load.close()
                self.share.drop(load.new)
                for number in range(1, self.count + 1):  # an old worker that died meanwhile
                    if number in self.slots and self.slots[number].state == "exited":
                        del self.slots[number]
                    if number not in self.slots:
                        asyncio.get_running_loop().call_soon(self._replace, number, self.generation)
                return
            old_application, old_load = self.application, self.load
            self.application, self.load = application, load
            self.failures.clear()
            retiring = [w for w in self.workers.values() if w.generation < self.generation
                        and w.state in ("starting", "serving")]
            log.info("Reloaded: generation %d serving; retiring %d workers of the previous one.",
                     self.generation, len(retiring))
            if self.notifier is not None and hasattr(self.notifier, "reloaded"):
                from twistdlite.launch.runner import status_line

                self.notifier.reloaded(status_line(self.application))
            for worker in retiring:
                self._retire(worker)
        finally:
            self.reloading = False
            self._write_status()
        if retiring:
            await asyncio.wait([w.exited for w in retiring])
        unused = [key for key in old_load.keys if key not in load.keys]
        for key in unused:
            log.info("Closing the listening socket %s: the reloaded application does not use it.",
                     self.share.describe(key))
        self.share.drop(unused)
        if not any(w.load is old_load for w in self.workers.values()) and old_load in self.loads:
            self.loads.remove(old_load)
            old_load.close()
        del old_application

    # -- health and status ------------------------------------------------------------------------------
    def _live(self) -> tuple:
        now = time.monotonic()
        silent = min(self.options.worker_timeout, LIVE_MISSED_BEATS * self._watch_every())
        for worker in self.workers.values():
            if worker.state == "serving" and now - worker.beat > silent:
                return False, f"{worker.name()} sent no heartbeat for {now - worker.beat:.1f} s"
        serving = sum(1 for w in self.workers.values() if w.state == "serving")
        return True, f"the supervisor and {serving} workers' event loops respond"

    def _ready(self) -> tuple:
        if self.stopping.is_set():
            return False, "shutting down"
        serving = sum(1 for w in self.slots.values() if w.state == "serving")
        if not self.is_ready:
            return False, f"starting: {serving} of {self.count} workers ready"
        if serving < self.count:
            return False, f"{serving} of {self.count} workers serving (replacing the others)"
        return True, f"{serving} of {self.count} workers serving"

    def _write_status(self) -> None:
        if self.status is None:
            return
        workers = [{"number": w.number, "pid": w.pid, "started": w.started_wall, "state": w.state,
                    "generation": w.generation, "restarts": self.restarts[w.number]}
                   for w in sorted(self.workers.values(), key=lambda w: (w.generation, w.number))]
        self.status.write({"supervisor": self.me, "generation": self.generation, "wanted": self.count,
                           "ready": self.is_ready, "workers": workers})


def supervise(options: Options, application: Any, readiness: Any, logs: Any,
              uid: Optional[int], gid: Optional[int]) -> int:
    """Steps 5-7 of the run as a supervised pool (the runner's branch for ``--workers``); the exit status."""
    loop = asyncio.new_event_loop()  # always the stdlib loop: the workers fork from it
    asyncio.set_event_loop(loop)
    supervisor = Supervisor(options, application, readiness, logs, uid, gid)
    try:
        return loop.run_until_complete(supervisor.run())
    finally:
        from twistdlite.launch import runner

        runner.close_loop(loop)
