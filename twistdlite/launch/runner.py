"""The run, in order (../shared/DESIGN.md, "The run, in order"). Nothing else lives here.

1. load the application;  2. enter the directories, set the umask, lock the
pidfile;  3. detach (daemon mode);  4. write the pidfile, start logging;
5. privileged start, drop privileges, start;  6. report ready;  7. run until
a signal, stop, save the ``.tap``, remove the pidfile.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import sys
from typing import Any, Optional

import twistdlite
from twistdlite.launch import console, forks, loader, logsetup, notify, privileges, signals
from twistdlite.launch.errors import LaunchError, StartError
from twistdlite.launch.options import Options
from twistdlite.launch import pidfile as pidfiles
from twistdlite.launch.readiness import Readiness

log = logging.getLogger("twistdlite")


def run(options: Options) -> int:
    """Run the application the options describe; returns the exit status (raises LaunchError)."""
    check_reactor(options.reactor)
    from twistdlite import reactor

    reactor.launcher_runs_loop()  # reactor.run() in the .tac: a warning, as under twistd
    application = loader.load(options)                                    # 1
    pool = pool_module(options)  # --workers: the supervisor's module, imported before --chroot
    logsetup.check(options, application)  # a --logger factory that cannot be found
    if not options.no_save or options.tap_key:
        from twistdlite.launch import persist

        persist.prepare_save(application, options)  # read --tap-key before chdir/chroot/setuid
    notifier = notify.from_environment()  # connected before --chroot; children never see NOTIFY_SOCKET
    detacher = None
    if options.daemonize:  # before --chroot: python-daemon imported, /dev/null opened
        from twistdlite.launch import daemon

        detacher = daemon.Detacher(
            umask=options.effective_umask,
            logfile=logsetup.log_path(options, application),
            timeout=options.start_timeout + options.shutdown_timeout + daemon.GRACE,
            keep_stdout=options.logfile == "-",
        )
    uid, gid = ids = privileges.prepare(*process_ids(options, application))  # the user database: before --chroot
    if options.chroot or ids != (None, None):  # preload.needed(): an unconfined start stays lazy, registry unbuilt
        from twistdlite.launch import preload

        preload.preload(options, *ids)  # confined (--chroot, -u/-g) lazy imports would fail: import them now
    enter_directories(options)                                            # 2
    pidfile = pidfiles.for_options(options.pidfile)  # a NoPidFile with --pidfile ''
    pidfile.acquire()
    readiness: Readiness = Readiness()  # the foreground's, which says nothing
    try:
        if detacher is not None:                                          # 3
            # The descriptors the daemon keeps, an explicit list: the pidfile
            # (its lock is the daemon's liveness) and, added by the detacher,
            # the readiness pipe and stdout with -l -. Everything else is closed.
            side = detacher.detach(keep_fds=pidfile.keep_fds() + logsetup.fds_to_keep(application)
                                   + [notifier.fileno()])
            if isinstance(side, daemon.Launcher):
                pidfile.close()  # the daemon holds the lock now
                try:
                    side.wait()
                except LaunchError:
                    pidfile.discard_stale(side.pid)  # a daemon that died cannot remove it
                    raise
                return 0
            readiness = side
            notifier.adopt()
        # A worker a service forks must not keep the pidfile's lock, the readiness pipe or systemd's socket.
        forks.close_in_children(pidfile.fd, getattr(readiness, "fd", None),
                                notifier.fileno())
        if notifier.enabled:
            readiness = notify.NotifyingReadiness(readiness, notifier, status_line(application),
                                                  mainpid=os.getpid() if detacher is not None else None)
        signals.catch_early()
        try:
            pidfile.write(os.getpid())                                    # 4
            logs = logsetup.start_logging(options, application)
        except BaseException as exc:
            readiness.failed(str(exc) if isinstance(exc, LaunchError) else f"{type(exc).__name__}: {exc}")
            raise
        try:
            log_start(options, application, pidfile)
            notifier.log_warnings()  # what was wrong with NOTIFY_SOCKET/WATCHDOG_USEC, now that the log is open
            if not options.no_save:  # a save killed last time left its temporary file
                persist.remove_stale_temp_files(persist.shutdown_tap_path(application))
            if readiness.closed_fds:
                log.info("Detaching closed descriptors the run does not keep: %s",
                     ", ".join(readiness.closed_fds))
            # Steps 5-7: in this process, or (--workers) in a supervised pool of worker processes.
            # Start-up is over (the CLI deferred cyclic collections): serve with the collector on. Its objects,
            # all still in the youngest generation, go to the oldest first (freeze + unfreeze: two list splices),
            # where collections would have moved them: the first young collection would scan them all (~14 M
            # instructions before the first accept); the next full collection frees the start-up's garbage.
            console.resume_collections()  # (the collector as the application left it: thresholds, frozen objects)
            serve = pool.supervise if pool is not None else run_loop
            if not (options.debug or options.profile or options.spew):
                return serve(options, application, readiness, logs, uid, gid)
            from twistdlite.launch import debug

            return debug.wrap(options, lambda: serve(options, application, readiness, logs, uid, gid))
        except BaseException as exc:
            # Kept only when nothing more precise was reported first.
            readiness.failed(str(exc) if isinstance(exc, LaunchError) else f"{type(exc).__name__}: {exc}")
            raise
        finally:
            pidfile.release()  # while the log is open: one that cannot be removed is said there
            logs.close()
    finally:
        pidfile.release()  # (if the log never started)
        readiness.close()  # a failure reaches the launching command only once the pidfile is gone


def pool_module(options: Options) -> Any:
    """:mod:`~twistdlite.launch.workers` when the run is a supervised pool (or has --health), else None.

    Imported here, before ``--chroot`` and the privilege drop, with what it needs.
    """
    if options.workers == 1 and not options.health and not (os.getpid() == 1 and not options.daemonize):
        return None
    from twistdlite.launch import workers

    workers.preload()
    return workers if workers.pooled(options) else None


def check_reactor(name: str) -> None:
    """Fail before anything happens when the reactor is unknown or not installed."""
    from twistdlite.reactor import REACTORS

    if name not in REACTORS:
        raise LaunchError(f"unknown reactor {name!r}; available: {', '.join(REACTORS)} (see --help-reactors)")
    if name == "uvloop":
        import importlib.util

        if importlib.util.find_spec("uvloop") is None:
            raise LaunchError("reactor 'uvloop' is not installed: pip install 'twistdlite[uvloop]'")


def enter_directories(options: Options) -> None:
    """Apply ``--chroot``, ``--rundir`` and the umask."""
    if options.chroot:
        try:
            os.chroot(options.chroot)
            os.chdir("/")
        except OSError as exc:
            raise LaunchError(f"cannot chroot to {options.chroot}: {exc.strerror}") from None
    if options.rundir and options.rundir != ".":
        try:
            os.chdir(options.rundir)
        except OSError as exc:
            raise LaunchError(f"cannot use run directory {options.rundir}: {exc.strerror}") from None
    if options.effective_umask is not None:
        os.umask(options.effective_umask)


def process_ids(options: Options, application: Any) -> tuple[Optional[int], Optional[int]]:
    """The uid/gid to run as: the options', else the Application's."""
    uid = options.uid if options.uid is not None else getattr(application, "uid", None)
    gid = options.gid if options.gid is not None else getattr(application, "gid", None)
    return uid, gid


def log_start(options: Options, application: Any, pidfile: Any) -> None:
    """The start-up lines a twistd user recognises."""
    log.info("twistdlite %s (%s %s) starting up.", twistdlite.__version__, sys.executable,
             sys.version.split()[0])
    log.info("reactor class: %s.", options.reactor)
    log.info("application: %s", getattr(application, "name", None) or type(application).__name__)
    if pidfile.stale is not None:
        log.info("Removing stale pidfile %s (it named PID %s)", os.path.abspath(pidfile.path),
                 pidfile.stale or "nothing readable")


def status_line(application: Any) -> str:
    """What ``systemctl status`` shows while the application runs."""
    name = getattr(application, "name", None) or type(application).__name__
    return f"Serving {name} (PID {os.getpid()})"


def make_loop(reactor: str) -> asyncio.AbstractEventLoop:
    """A new event loop of the chosen kind."""
    if reactor == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Tear down a run's loop: cancel the tasks left (a turn to let them end), finish the async generators, close it.

    The run's own signal handlers are gone by now (restored when its serving ended). While the
    loop closes, SIGTERM, SIGINT, SIGHUP and SIGUSR1 are held back (asyncio closes its signal pipe
    before it removes the handlers a service may have added with ``loop.add_signal_handler``: a
    signal in between is written to a closed descriptor, and after it the default action kills
    the process), then taken by :func:`signals.catch_early`'s handlers: a late SIGTERM never cuts
    short the clean-up that follows (the pidfile, the log, the exit).
    """
    try:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(_last_turn(loop))
    finally:
        asyncio.set_event_loop(None)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, (*signals.STOP_SIGNALS, *signals.LOG_SIGNALS))
        try:
            loop.close()
            signals.catch_early()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


async def _last_turn(loop: asyncio.AbstractEventLoop) -> None:
    await asyncio.sleep(0)  # the cancelled tasks end
    await loop.shutdown_asyncgens()


def run_loop(options: Options, application: Any, readiness: Readiness, logs: Any,
             uid: Optional[int], gid: Optional[int]) -> int:
    """Create the loop, serve until told to stop, and tear the loop down."""
    from twistdlite import reactor

    probe = None
    if options.health:  # the single process answers the probes itself
        from twistdlite.launch import health

        readiness, probe = health.listen_single(options.health, readiness)
    loop = make_loop(options.reactor)
    asyncio.set_event_loop(loop)
    serving = Serving(options, application, readiness, logs, uid, gid)
    main = loop.create_task(serving.serve())
    reactor.install(loop, stop_hook=serving.request_stop)
    try:
        return loop.run_until_complete(main)
    finally:
        if probe is not None:
            probe.stopListening()
        reactor.uninstall()
        close_loop(loop)


class Serving:
    """Steps 5 to 7 of the run, on the loop: start (bounded), report, wait for a stop, stop (bounded)."""

    def __init__(self, options: Options, application: Any, readiness: Readiness, logs: Any,
                 uid: Optional[int], gid: Optional[int]) -> None:
        self.options = options
        self.application = application
        self.readiness = readiness
        self.logs = logs
        self.uid = uid
        self.gid = gid
        self.stopping: Optional[asyncio.Event] = None  # set by the first SIGTERM/SIGINT or reactor.stop()
        self.forced: Optional[asyncio.Event] = None    # set by a second one: stop at once
        self.stop_reason = "reactor.stop()"
        self.stop_requested = False
        self.main: Optional[asyncio.Task] = None
        self.signals = 0
        self.notifier: notify.Notifier = getattr(readiness, "notifier", None) or notify.Notifier()

    def request_stop(self) -> None:
        """Begin a graceful stop (``reactor.stop()``), remembered if :meth:`serve` has not begun yet."""
        self.stop_requested = True
        if self.stopping is not None:
            self.stopping.set()

    def _on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.info("Received %s, shutting down.", name)
            self.stop_reason = name
            self.request_stop()
        elif self.forced is not None and not self.forced.is_set():
            log.warning("Received %s again, stopping at once.", name)
            self.forced.set()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> signals.LoopSignals:
        """The run's handlers, on ``loop`` (the caller restores the previous ones at the end of the run)."""
        handlers = signals.LoopSignals(loop)
        for signum in signals.STOP_SIGNALS:
            handlers.add(signum, self._on_signal, signum)
        handlers.add(signal.SIGUSR1, self._rotate)
        handlers.add(signal.SIGHUP, self._reopen)
        if not self.options.debug:  # with -b, SIGUSR2 breaks into pdb instead
            handlers.add(signal.SIGUSR2, self._dump_stacks)
        for signum in signals.take_early():  # arrived before the loop's handlers
            self._on_signal(signum)
        return handlers

    def _rotate(self) -> None:
        log.info("Received SIGUSR1, rotating the log.")  # the last line of the old file
        rotate = getattr(self.logs, "rotate", None) or self.logs.reopen
        rotate()

    def _reopen(self) -> None:
        self.notifier.reloading()
        self.logs.reopen()
        log.info("Received SIGHUP, reopened the log.")  # never fatal: a daemon has no terminal to lose
        self.notifier.reloaded(status_line(self.application))

    def _dump_stacks(self) -> None:
        from twistdlite.launch import stacks

        log.info("Received SIGUSR2, the stacks of all threads and tasks:\n%s", stacks.dump_stacks())

    async def serve(self) -> int:
        """Start, report, wait for a stop, stop, save; returns the exit status."""
        loop = asyncio.get_running_loop()
        self.main = asyncio.current_task()
        self.stopping = asyncio.Event()
        self.forced = asyncio.Event()
        if self.stop_requested:
            self.stopping.set()
        handlers = self._install_signals(loop)
        try:
            watchdog = notify.WatchdogPinger(self.notifier, loop)
            watchdog.start()  # from the loop itself: a blocked loop stops the pings
            try:
                return await self._serve(loop)
            finally:
                watchdog.stop()
        finally:
            handlers.restore()  # those from before the run (catch_early's): a late signal waits for the exit

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> int:
        from twistdlite.error import CannotListenError, ConnectError
        from twistdlite.service import IService

        service = IService(self.application)
        before = asyncio.all_tasks()
        try:
            await self._start(service)                                    # 5
        except LaunchError as exc:
            log.error("Start-up failed: %s", exc)
            self.readiness.failed(str(exc))
            await self._settle(before)
            raise
        except (CannotListenError, ConnectError) as exc:  # a port in use, a peer socket missing: said in full
            log.error("Start-up failed: %s", exc)
            self.readiness.failed(str(exc))
            await self._settle(before)
            raise StartError(str(exc)) from None
        except Exception as exc:
            log.error("Start-up failed", exc_info=True)
            message = f"start failed: {type(exc).__name__}: {exc}"
            self.readiness.failed(message)
            await self._settle(before)
            raise StartError(message) from None
        events = sys.modules.get("twistdlite._events")  # not imported: no system event trigger was ever added
        if events is not None:
            await events.fire_bounded("startup", self.options.start_timeout)  # reactor's startup triggers
        self.readiness.ready()                                            # 6
        await self.stopping.wait()                                        # 7
        self.notifier.stopping(self.stop_reason)
        getattr(self.readiness, "stopping", lambda: None)()  # --health: /readyz answers 503 from now
        return await self._stop(service)

    async def _start(self, service: Any) -> None:
        """privilegedStartService, drop privileges, startService: all within --start-timeout."""
        from twistdlite.service import maybe_await

        loop = asyncio.get_running_loop()
        timeout = self.options.start_timeout
        end = loop.time() + timeout
        if self.stopping.is_set():
            raise LaunchError(f"stopped by {self.stop_reason} before the services started")
        try:
            with signals.deadline(timeout):
                self._privileged_start(service)
                result = service.startService()
        except signals.StartDeadline as exc:
            from twistdlite.launch import stacks  # lazily; preload imports it before a confined run

            raise StartError(self._start_timed_out(stacks.service_in_frame(exc.frame))) from None
        if not inspect.isawaitable(result):
            return
        self.notifier.extend_start(max(0.0, end - loop.time()) + 1.0)  # a slow start, still within bounds
        start = asyncio.ensure_future(maybe_await(result))
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({start, stop_wait}, timeout=max(0.0, end - loop.time()),
                                     return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if start in done:
            start.result()
            return
        from twistdlite.launch import stacks

        hung = stacks.service_in_tasks(start)
        start.cancel()  # a MultiService stops the children it started, in reverse order
        await self._bounded(start, "undoing the start")
        if self.stopping.is_set():
            raise LaunchError(f"stopped by {self.stop_reason} before every service had started")
        raise StartError(self._start_timed_out(hung))

    def _privileged_start(self, service: Any) -> None:
        """privilegedStartService, then drop privileges (a pool's worker: done by its supervisor)."""
        from twistdlite.service import release_privileged

        service.privilegedStartService()
        try:
            privileges.drop(self.uid, self.gid, self.options.euid)
        except BaseException:
            release_privileged(service)  # close the bound ports, remove UNIX socket files
            raise

    def _start_timed_out(self, hung: Any) -> str:
        from twistdlite.launch import stacks

        where = f" (still starting {stacks.describe(hung)})" if hung is not None else ""
        return f"start timed out after {self.options.start_timeout:g} s{where}"

    async def _bounded(self, task: asyncio.Future, what: str) -> str:
        """Wait for ``task`` until --shutdown-timeout or a second signal: "done", "timeout" or "forced"."""
        forced = asyncio.ensure_future(self.forced.wait())
        try:
            await asyncio.wait({task, forced}, timeout=self.options.shutdown_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            forced.cancel()
        if task.done():
            return "done"
        if self.forced.is_set():
            outcome = "forced"
        else:
            from twistdlite.launch import stacks

            hung = stacks.service_in_tasks(task)
            still = f" (still waiting for {stacks.describe(hung)})" if hung is not None else ""
            log.error("%s took longer than %g s%s; exiting anyway.", what.capitalize(),
                      self.options.shutdown_timeout, still)
            outcome = "timeout"
        task.cancel()
        return outcome

    async def _settle(self, before: set) -> None:
        """After a failed start, let the stops it scheduled finish (bounded like a stop)."""
        pending = asyncio.all_tasks() - before - {asyncio.current_task()}
        if pending:
            await self._bounded(asyncio.ensure_future(asyncio.wait(pending)), "stopping the started services")

    def _stop_cut_short(self, exc: "signals.StopDeadline") -> str:
        """Log a synchronous stop that overran or met a second signal; "timeout" or "forced"."""
        from twistdlite.launch import stacks

        hung = stacks.service_in_frame(exc.frame)
        if exc.forced:
            self.signals += 1
            log.warning("Received %s again, stopping at once.", signal.Signals(exc.signum).name)
            self.forced.set()
            return "forced"
        still = f" (still waiting for {stacks.describe(hung)})" if hung is not None else ""
        log.error("Stopping the application took longer than %g s%s; exiting anyway.",
                  self.options.shutdown_timeout, still)
        return "timeout"

    async def _stop(self, service: Any) -> int:
        """'before shutdown' triggers and stopService (bounded together; a second signal cuts them short),
        the 'during' and 'after' triggers, then save the .tap; the exit status."""
        from twistdlite.service import maybe_await, stop_service  # stop_service: no Deferred where it would only wrap one

        events = sys.modules.get("twistdlite._events")  # not imported: no system event trigger was ever added
        code = 0
        outcome = "done"
        triggers: list = []
        try:
            with signals.deadline(self.options.shutdown_timeout, signals.StopDeadline), \
                    signals.second_signal_interrupts():
                if events is not None:  # the .tac's 'before shutdown' triggers first, then stopService, as twistd
                    triggers = events.run_phase("shutdown", "before")
                result = stop_service(service)
        except signals.StopDeadline as exc:  # a stopService that blocked: bounded like an awaited one
            result, code = None, 1
            outcome = self._stop_cut_short(exc)
        except Exception:
            log.exception("Error while stopping the application")
            result, code = None, 1
        if inspect.isawaitable(result) or triggers:
            task = asyncio.ensure_future(events.wait_with(result, triggers) if triggers else maybe_await(result))
            outcome = await self._bounded(task, "stopping the application")
            if outcome == "done" and not task.cancelled() and task.exception() is not None:
                log.error("Error while stopping the application", exc_info=task.exception())
                code = 1
            elif outcome != "done":
                if triggers:
                    events.log_unfired(triggers, self.options.shutdown_timeout)
                code = 1
        events = sys.modules.get("twistdlite._events")  # (a stopService may have added a trigger)
        if events is not None:
            events.run_phase("shutdown", "during")
            events.run_phase("shutdown", "after")
        if outcome == "forced":
            log.warning("Stopped at once: the services may not have finished stopping; no .tap saved.")
            log.info("Server Shut Down.")
            return code
        if not self.options.no_save:
            # A turn of the loop first, for what the stop set off: a connection its client closed just before
            # the signal is dropped by its port then (connection_lost), not pickled with the application.
            await asyncio.sleep(0)
            code = self._save() or code
        log.info("Server Shut Down.")
        return code

    def _save(self) -> int:
        """Save the shutdown ``.tap`` (0, else 1); a second SIGTERM/SIGINT during the save stops at once."""
        from twistdlite.launch import persist

        path = persist.shutdown_tap_path(self.application)
        before = _identity(path)
        try:
            with signals.second_signal_interrupts():  # the save is synchronous: the loop cannot see a signal
                persist.save_shutdown_tap(self.application, self.options)
        except signals.StopDeadline as exc:  # the temporary file is removed; the previous .tap stays
            self.signals += 1
            self.forced.set()
            log.warning("Received %s again, stopping at once.", signal.Signals(exc.signum).name)
            if _identity(path) == before:
                log.warning("Stopped at once: the save was cut short; no .tap saved (%s was not changed).", path)
            else:  # the signal came after the rename: the new .tap is whole
                log.warning("Stopped at once, just after %s was saved.", path)
            return 1
        except LaunchError as exc:
            log.error("%s", exc)
            return 1
        return 0


def _identity(path: str) -> Optional[tuple]:
    """What tells whether the file at ``path`` was replaced: its inode and change time, or None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)
