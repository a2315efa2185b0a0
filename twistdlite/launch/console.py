"""The ``twistdlite`` command's entry point: the cyclic collector off, then the CLI.

Start-up makes objects that live for good (click's option definitions, the
launcher's and the application's modules and classes); the cyclic collector
would scan them again and again for nothing. Turning it off here, before click
and the launcher are imported, saves ~8 M instructions of a ~320 M start (importing
click alone triggers several collections). The runner turns it back on once
start-up is over, before the services start (``runner.run``). This module
imports nothing else, so importing it cannot have run a collection yet.

"Off" is a first threshold of 0 rather than ``gc.disable()``: a ``.tac`` that
turns the collector off itself (``gc.disable()``), sets its own thresholds or
freezes its objects for good (``gc.freeze()``) keeps what it asked for, as
under twistd.
"""

import gc
from typing import Optional, Tuple

_deferred: Optional[Tuple[int, ...]] = None  # the thresholds found, while collections are deferred


def defer_collections() -> None:
    """Stop automatic cyclic collections until :func:`resume_collections` (once; ``gc.isenabled()`` unchanged)."""
    global _deferred
    if _deferred is None:
        _deferred = gc.get_threshold()
        gc.set_threshold(0)


def resume_collections() -> None:
    """Start-up is over: its objects go to the oldest generation, and automatic collections resume.

    The move (``gc.freeze`` then ``gc.unfreeze``: two list splices) spares the
    first young collection a scan of every object start-up made; it is skipped
    when the application froze objects itself (``unfreeze`` would undo that).
    Thresholds the application set are kept.
    """
    global _deferred
    if _deferred is None:
        return
    thresholds, _deferred = _deferred, None
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    if gc.get_threshold()[0] == 0:
        gc.set_threshold(*thresholds)


def main() -> None:
    """Run the ``twistdlite`` command (what the console script calls)."""
    defer_collections()
    from twistdlite.launch.cli import main as run

    run()
