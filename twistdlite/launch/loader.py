"""Turn options into an Application: run a ``.tac``, read a ``.tap``, or build a plugin's.

Imports point one way: the loader uses :mod:`persist` (the ``.tap`` format and files),
never the reverse.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from twistdlite.launch.errors import LoadError
from twistdlite.launch.options import Options


def load(options: Options) -> Any:
    """Load the application the options name; :class:`LoadError` with a clear message on failure."""
    if options.python:
        return load_tac(options.python, remember_paths=not options.no_save)
    if options.plugin:
        from twistdlite.launch import plugins

        return plugins.build(options.plugin, options.plugin_args)
    return load_tap(options.tap_file, options)


def load_tap(path: str, options: Options) -> Any:
    """Load the application saved in the ``.tap`` at ``path`` (``-f``), checked as the options say."""
    from twistdlite.launch import persist

    key = persist.read_key(options.tap_key)
    application, header = persist.load(path, key, options.allow_unsafe_tap)
    application = check_application(application, path)
    persist.remember_loaded(application, header, key)
    return application


def _check_readable(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise LoadError(f"{what} {path!r} does not exist")
    if os.path.isdir(path):
        raise LoadError(f"{what} {path!r} is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise LoadError(f"{what} {path!r} is not readable")


def _user_traceback(exc: BaseException, filename: str) -> str:
    """The traceback of ``exc`` from the first frame of the user's file on."""
    frames = traceback.extract_tb(exc.__traceback__)
    for index, frame in enumerate(frames):
        if os.path.abspath(frame.filename) == filename:
            frames = frames[index:]
            break
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def load_tac(path: str, remember_paths: bool = True) -> Any:
    """Run the ``.tac`` at ``path`` as a script and return its ``application``.

    The file runs with ``__file__`` set and its directory at the front of
    ``sys.path``, so modules beside it import; with ``remember_paths`` that
    directory is recorded for the application's ``.tap`` (there is none with ``-o``).
    """
    _check_readable(path, "Application file")
    filename = os.path.abspath(path)
    try:
        with open(filename, "rb") as handle:
            source = handle.read()
        code = compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"{path}, line {exc.lineno}" if exc.lineno else path
        raise LoadError(f"syntax error in {where}: {exc.msg}") from None
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read application file {path!r}: {exc}") from None
    directory = os.path.dirname(filename)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    namespace: dict = {"__file__": filename, "__name__": "__builtin__", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except SystemExit as exc:
        raise LoadError(f"{path} called sys.exit({exc.code!r}) while loading") from None
    except BaseException as exc:  # the user's code: show its own frames
        if isinstance(exc, KeyboardInterrupt):
            raise
        detail = _user_traceback(exc, filename)
        raise LoadError(
            f"error while running {path}: {type(exc).__name__}: {exc}", detail=detail
        ) from None
    if "application" not in namespace:
        raise LoadError(f"{path} does not define 'application'")
    application = check_application(namespace["application"], path)
    if remember_paths:
        from twistdlite.launch import persist

        persist.remember_paths(application, [directory])  # so a restart from its .tap imports them again
    return application


def _article(noun: str) -> str:
    """``noun`` with "a" or "an" before it."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def check_application(application: Any, source: str) -> Any:
    """Return ``application`` if it is a service tree; :class:`LoadError` otherwise."""
    from twistdlite.service import IService

    if IService(application, None) is None:
        raise LoadError(
            f"'application' in {source} is {_article(type(application).__name__)}, "
            "not a twistdlite service (use twistdlite.service.Application(name))"
        )
    return application
