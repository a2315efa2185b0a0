"""Plugins: subcommands that build an application from command-line options.

Built-in plugins live in ``twistdlite.plugins``; others register an entry point
in the ``twistdlite.plugins`` group. Each is a module-level object with
``name``, ``description`` and ``makeService(options)`` (Twisted's
``IServiceMaker`` shape) plus ``command``, a click command for its options.
"""

from __future__ import annotations

from typing import Any

from twistdlite.launch.errors import LoadError


def build(name: str, args: tuple) -> Any:
    """Build the application of plugin ``name`` from its parsed options ``args``."""
    raise LoadError(f"unknown plugin {name!r}")
