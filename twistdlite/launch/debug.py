"""Debugging aids: ``--profile``/``--profiler``/``--savestats``, ``--spew``, ``-b/--debug``."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any, Callable

from twistdlite.launch.errors import LaunchError
from twistdlite.launch.options import Options

log = logging.getLogger("twistdlite.spew")

PROFILERS = ("cprofile", "profile")


def wrap(options: Options, run: Callable[[], int]) -> int:
    """Run ``run()`` under whatever debugging the options ask for."""
    if options.spew:
        sys.settrace(_spew)
    if options.debug:
        signal.signal(signal.SIGUSR2, _break_into_pdb)
    try:
        if options.profile:
            return _profiled(options, run)
        return run()
    except Exception:
        if options.debug:
            import pdb
            import traceback

            traceback.print_exc()
            pdb.post_mortem(sys.exc_info()[2])
        raise
    finally:
        if options.spew:
            sys.settrace(None)


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
