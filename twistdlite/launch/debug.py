"""Debugging aids: ``--profile``/``--profiler``/``--savestats``, ``--spew``, ``-b/--debug``.

* ``-p FILE`` runs the loop under ``cProfile`` (or ``profile``) and writes a
  text report sorted by cumulative time to ``FILE``, or with ``--savestats``
  the raw statistics that :mod:`pstats` loads. ``FILE`` is checked before
  the run starts, so a bad path fails at once rather than after a long run.
* ``--spew`` logs every Python function call (``twistdlite.spew`` logger).
* ``-b`` (which implies ``-n``): an unhandled error drops into ``pdb``'s
  post-mortem prompt at the frame that raised it, whether it ends the run (a
  failed start) or is only logged (an exception in a protocol callback, a
  delayed call or a timer, as Twisted's debug mode does). ``SIGUSR2`` breaks
  into ``pdb`` where the program is.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any, Callable, Optional

from twistdlite.launch.errors import LaunchError
from twistdlite.launch.options import Options

log = logging.getLogger("twistdlite.spew")

PROFILERS = ("cprofile", "profile")


def wrap(options: Options, run: Callable[[], int]) -> int:
    """Run ``run()`` under whatever debugging the options ask for."""
    if options.profile:
        _check_writable(options.profile)
    post_mortem: Optional[PostMortem] = None
    if options.debug:
        signal.signal(signal.SIGUSR2, _break_into_pdb)
        post_mortem = PostMortem()
        logging.getLogger().addHandler(post_mortem)
    if options.spew:
        sys.settrace(_spew)
    try:
        if options.profile:
            return _profiled(options, run)
        return run()
    except Exception as exc:
        if post_mortem is not None:
            post_mortem.debug(root_cause(exc))
        raise
    finally:
        if options.spew:
            sys.settrace(None)
        if post_mortem is not None:
            logging.getLogger().removeHandler(post_mortem)


def root_cause(exc: BaseException) -> BaseException:
    """The first exception of the chain that ended with ``exc`` (its cause, or what it was raised while handling)."""
    seen = {id(exc)}
    while True:
        previous = exc.__cause__ or exc.__context__
        if previous is None or id(previous) in seen:
            return exc
        seen.add(id(previous))
        exc = previous


class PostMortem(logging.Handler):
    """Drops into ``pdb`` post-mortem on each error logged with its traceback, and on the error that ends the run."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: set = set()

    def emit(self, record: logging.LogRecord) -> None:
        """Debug the exception of an error record, if it has one."""
        if record.exc_info and record.exc_info[1] is not None:
            self.debug(record.exc_info[1])

    def debug(self, exc: BaseException) -> None:
        """Print ``exc``'s traceback and open pdb at the frame that raised it (once per exception)."""
        if id(exc) in self.seen or exc.__traceback__ is None:
            return
        if isinstance(exc, LaunchError) and exc.__cause__ is None and exc.__context__ is None:
            return  # twistdlite's own refusal: nothing of the user's to look at
        self.seen.add(id(exc))
        import pdb
        import traceback

        sys.stdout.flush()
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.write("*** post-mortem debugging (c or q to go on)\n")
        sys.stderr.flush()
        pdb.post_mortem(exc.__traceback__)


def _check_writable(path: str) -> None:
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise LaunchError(f"cannot write profile {path}: {exc.strerror}") from None


def _profiled(options: Options, run: Callable[[], int]) -> int:
    if options.profiler == "cprofile":
        import cProfile as profile_module
    else:
        import profile as profile_module  # type: ignore[no-redef]
    profiler = profile_module.Profile()
    try:
        return profiler.runcall(run)
    finally:
        try:
            if options.savestats:
                profiler.dump_stats(options.profile)
            else:
                import pstats

                with open(options.profile, "w") as out:
                    stats = pstats.Stats(profiler, stream=out)
                    stats.strip_dirs().sort_stats("cumulative").print_stats()
        except OSError as exc:
            raise LaunchError(f"cannot write profile {options.profile}: {exc.strerror}") from None


def _spew(frame: Any, event: str, arg: Any) -> Any:
    if event == "call":
        code = frame.f_code
        log.info("function %s in %s, line %s", code.co_name, code.co_filename, frame.f_lineno)
    return None


def _break_into_pdb(signum: int, frame: Any) -> None:
    import pdb

    pdb.Pdb().set_trace(frame)
