"""Duration options (``--start-timeout``, ``--shutdown-timeout``, ``stop --timeout``, ...): checked in one place.

A duration is a finite number of seconds greater than 0 and at most
:data:`MAX_SECONDS`; infinity, NaN, a negative number and one past the maximum
are usage errors (exit 2) that name the option.
"""

from __future__ import annotations

import math
from typing import Any, Optional

#: The longest duration any option accepts: one day.
MAX_SECONDS = 86400.0
#: What --help says about every duration option.
HELP = "more than 0, at most 86400 s: one day"


def check(value: float) -> Optional[str]:
    """Why ``value`` is not an acceptable duration, or None when it is."""
    if math.isnan(value) or math.isinf(value):
        return f"must be a finite number of seconds, not {value!r}"
    if value <= 0:
        return f"must be greater than 0, not {value:g}"
    if value > MAX_SECONDS:
        return f"must be at most {MAX_SECONDS:g} seconds (one day), not {value:g}"
    return None


def option(ctx: Any, param: Any, value: Optional[float]) -> Optional[float]:
    """A click callback for a duration option: ``click.BadParameter`` (exit 2, naming it) when unacceptable."""
    if value is None:
        return None
    problem = check(value)
    if problem is not None:
        import click

        raise click.BadParameter(problem, ctx=ctx, param=param)
    return value
