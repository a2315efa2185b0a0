"""The run, in order (../shared/DESIGN.md, "The run, in order"). Nothing else lives here.

1. load the application;  2. enter the directories, set the umask, lock the
pidfile;  3. detach (daemon mode);  4. write the pidfile, start logging;
5. privileged start, drop privileges, start;  6. report ready;  7. run until
a signal, stop, save the ``.tap``, remove the pidfile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any, Optional

import twistdlite
from twistdlite.launch import daemon, loader, logsetup, privileges
from twistdlite.launch.errors import LaunchError, StartError, StopTimeout
from twistdlite.launch.options import Options
from twistdlite.launch.pidfile import PidFile

log = logging.getLogger("twistdlite")


def run(options: Options) -> int:
    """Run the application the options describe; returns the exit status (raises LaunchError)."""
    check_reactor(options.reactor)
    application = loader.load(options)                                    # 1
    if not options.no_save:
        from twistdlite.launch import persist

        persist.prepare_save(application, options)  # read --tap-key before chdir/chroot/setuid
    enter_directories(options)                                            # 2
    uid, gid = process_ids(options, application)
    privileges.check_can_switch(uid, gid)
    pidfile = PidFile(options.pidfile) if options.pidfile else None
    if pidfile is not None:
        pidfile.acquire()
    try:
        readiness: daemon.Readiness = daemon.Readiness()
        if options.daemonize:                                             # 3
            side = daemon.detach(
                keep_fds=[pidfile.fd] if pidfile is not None else [],
                umask=options.effective_umask,
                logfile=logsetup.log_path(options),
            )
            if isinstance(side, daemon.Launcher):
                if pidfile is not None:
                    os.close(pidfile.fd)  # the daemon holds the lock now
                    pidfile.fd = None
                side.wait()
                return 0
            readiness = side
        try:
            if pidfile is not None:                                       # 4
                pidfile.write(os.getpid())
            logs = logsetup.start_logging(options, application)
        except LaunchError as exc:
            readiness.failed(str(exc))
            raise
        try:
            log_start(options, application, pidfile)
            from twistdlite.launch import debug

            return debug.wrap(options, lambda: run_loop(options, application, readiness, logs, uid, gid))
        finally:
            logs.close()
    finally:
        if pidfile is not None:
            pidfile.release()


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


def log_start(options: Options, application: Any, pidfile: Optional[PidFile]) -> None:
    """The start-up lines a twistd user recognises."""
    log.info("twistdlite %s (%s %s) starting up.", twistdlite.__version__, sys.executable,
             sys.version.split()[0])
    log.info("reactor class: %s.", options.reactor)
    log.info("application: %s", getattr(application, "name", None) or type(application).__name__)
    if pidfile is not None and pidfile.stale is not None:
        log.info("Removing stale pidfile %s (it named PID %s)", os.path.abspath(pidfile.path),
                 pidfile.stale or "nothing readable")


def make_loop(reactor: str) -> asyncio.AbstractEventLoop:
    """A new event loop of the chosen kind."""
    if reactor == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_loop(options: Options, application: Any, readiness: daemon.Readiness, logs: Any,
             uid: Optional[int], gid: Optional[int]) -> int:
    """Create the loop, serve until told to stop, and tear the loop down."""
    from twistdlite import reactor

    loop = make_loop(options.reactor)
    asyncio.set_event_loop(loop)
    serving = Serving(options, application, readiness, logs, uid, gid)
    main = loop.create_task(serving.serve())
    reactor.install(loop, stop_hook=serving.request_stop)
    try:
        return loop.run_until_complete(main)
    finally:
        reactor.uninstall()
        try:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class Serving:
    """Steps 5 to 7 of the run, on the loop."""

    def __init__(self, options: Options, application: Any, readiness: daemon.Readiness, logs: Any,
                 uid: Optional[int], gid: Optional[int]) -> None:
        self.options = options
        self.application = application
        self.readiness = readiness
        self.logs = logs
        self.uid = uid
        self.gid = gid
        self.stopping: Optional[asyncio.Event] = None
        self.main: Optional[asyncio.Task] = None
        self.signals = 0

    def request_stop(self) -> None:
        """Begin a graceful stop (``reactor.stop()``)."""
        if self.stopping is not None:
            self.stopping.set()

    def _on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.info("Received %s, shutting down.", name)
            self.request_stop()
        else:
            log.warning("Received %s again, stopping at once.", name)
            if self.main is not None:
                self.main.cancel()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        loop.add_signal_handler(signal.SIGUSR1, self._rotate)
        loop.add_signal_handler(signal.SIGHUP, self._reopen)

    def _rotate(self) -> None:
        log.info("Received SIGUSR1, rotating the log.")
        rotate = getattr(self.logs, "rotate", None) or self.logs.reopen
        rotate()

    def _reopen(self) -> None:
        log.info("Received SIGHUP, reopening the log.")
        self.logs.reopen()

    async def serve(self) -> int:
        """Start, report, wait for a stop, stop, save; returns the exit status."""
        from twistdlite.service import IService, maybe_await

        loop = asyncio.get_running_loop()
        self.main = asyncio.current_task()
        self.stopping = asyncio.Event()
        self._install_signals(loop)
        service = IService(self.application)
        try:
            service.privilegedStartService()                              # 5
            privileges.drop(self.uid, self.gid, self.options.euid)
            await self._start(service)
        except LaunchError as exc:
            self.readiness.failed(str(exc))
            raise
        except Exception as exc:
            log.exception("Start-up failed")
            message = f"start failed: {type(exc).__name__}: {exc}"
            self.readiness.failed(message)
            raise StartError(message) from None
        self.readiness.ready()                                            # 6
        await self.stopping.wait()                                        # 7
        return await self._stop(service)

    async def _start(self, service: Any) -> None:
        from twistdlite.service import maybe_await

        from twistdlite.launch.errors import LaunchError as _LaunchError
        try:
            result = service.startService()
        except Exception:
            raise
        if result is None:
            return
        start = asyncio.ensure_future(maybe_await(result))
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({start, stop_wait}, timeout=self.options.start_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if start in done:
            start.result()
            return
        start.cancel()
        try:
            await start
        except BaseException:
            pass
        await self._stop(service, quiet=True)
        if self.stopping.is_set():
            raise _LaunchError("stopped by a signal before every service had started")
        raise StartError(f"start timed out after {self.options.start_timeout:g} s")

    async def _stop(self, service: Any, quiet: bool = False) -> int:
        from twistdlite.service import maybe_await

        code = 0
        try:
            await asyncio.wait_for(maybe_await(service.stopService()), self.options.shutdown_timeout)
        except asyncio.TimeoutError:
            log.error("Stopping the application took longer than %g s; exiting anyway.",
                      self.options.shutdown_timeout)
            code = 1
        except Exception:
            log.exception("Error while stopping the application")
            code = 1
        if quiet:
            return code
        if not self.options.no_save:
            from twistdlite.launch import persist

            try:
                persist.save_shutdown_tap(self.application, self.options)
            except LaunchError as exc:
                log.error("%s", exc)
                code = 1
        log.info("Server Shut Down.")
        return code
