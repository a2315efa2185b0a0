"""Plugins: subcommands that build an application from command-line options, as ``twistd web`` does.

    twistdlite [launcher options] PLUGIN [plugin options]

Where plugins come from
    * Built in: each public module of the package :mod:`twistdlite.plugins`
      (``twistdlite/plugins/web.py`` is ``twistdlite web``); its attribute
      ``serviceMaker`` is the plugin. Modules whose names start with ``_`` are
      helpers, not plugins.
    * Installed: an ``importlib.metadata`` entry point in the group
      ``twistdlite.plugins``. Its name is the subcommand; its value,
      ``"pkg.mod:obj"``, names the plugin object (a value naming a module,
      ``"pkg.mod"``, means that module's ``serviceMaker``).

    ``stop``, ``status`` and the built-in plugins win over an entry point of the
    same name (which is ignored); of two entry points with one name, the first
    found on ``sys.path`` wins.

What a plugin is: Twisted's ``IServiceMaker`` shape
    ``tapname`` (or ``name``)
        The application's name, so its shutdown file is ``<tapname>-shutdown.tap``
        (default: the subcommand).
    ``description``
        One line, shown by ``twistdlite --help``.
    ``options``
        A ``click.Command`` (not a group) whose parameters are the plugin's
        options; ``twistdlite PLUGIN --help`` shows them. twistdlite only parses
        the arguments with it and never calls its callback, so
        ``click.Command("name", params=[click.Option(...), ...])`` is enough.
        Without ``options`` the plugin takes no options.
    ``makeService(options)``
        Called with the parsed options, a dict (``options["path"]``), it returns
        the service to run (an ``IService``). The launcher puts it in
        ``service.Application(tapname)``, unless it is an ``Application`` already.
        Raise ``click.UsageError`` for options that make no sense together (exit
        status 2), ``click.ClickException`` for a well-formed request that cannot
        be met, such as a missing directory (exit status 1): the message is printed
        as one line. Any other exception is a bug in the plugin: its traceback,
        from the plugin's own frames, is printed before the line.

    The object may be a class, which is instantiated with no arguments.

A plugin that fails to import, or an entry point that is malformed or names
something that is not a plugin, is a :class:`PluginError` naming it. Nothing here
runs at import time: entry points are scanned only to list the plugins (``--help``,
an unknown subcommand) or to run one that is not built in, and a plugin's module is
imported only when it is listed or run.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Optional, Sequence

import click

from twistdlite.launch.errors import LaunchError, PluginError, UnknownPlugin, UsageError

#: The entry point group installed plugins register in.
GROUP = "twistdlite.plugins"
#: The package whose public modules are the built-in plugins.
BUILTIN_PACKAGE = "twistdlite.plugins"
#: Subcommands that are not plugins; an entry point by one of these names is ignored.
RESERVED = frozenset({"stop", "status"})

__all__ = ["GROUP", "Plugin", "build", "builtin_names", "describe", "find", "forget", "load", "names",
           "unknown_message"]


class Plugin:
    """A loaded and checked plugin: what the launcher uses of a service maker."""

    __slots__ = ("name", "origin", "maker", "tapname", "description", "command")

    def __init__(self, name: str, origin: str, maker: Any, tapname: str, description: str,
                 command: click.Command) -> None:
        #: The subcommand.
        self.name = name
        #: Where it came from, for messages: a module name, or the entry point.
        self.origin = origin
        #: The service maker object itself.
        self.maker = maker
        #: The name of the Application it builds.
        self.tapname = tapname
        #: The one line ``--help`` shows.
        self.description = description
        #: The click command that parses its options.
        self.command = command

    def __repr__(self) -> str:
        return f"<Plugin {self.name!r} from {self.origin}>"

    def parse(self, args: Sequence[str]) -> dict:
        """The plugin's options parsed from ``args``; :class:`UsageError` when they are malformed."""
        try:
            # No help option here: the CLI has shown --help already, and a build never prints.
            ctx = self.command.make_context(self.name, list(args), help_option_names=[])
        except click.UsageError as exc:
            raise UsageError(f"{self.name}: {exc.format_message()}") from None
        except click.ClickException as exc:
            raise PluginError(f"{self.name}: {exc.format_message()}") from None
        except click.exceptions.Exit:
            raise UsageError(f"{self.name}: its options asked to exit while they were parsed") from None
        return dict(ctx.params)

    def make_application(self, options: dict) -> Any:
        """Call ``makeService(options)`` and return the Application to run."""
        try:
            made = self.maker.makeService(options)
        except LaunchError:
            raise
        except click.UsageError as exc:
            raise UsageError(f"{self.name}: {exc.format_message()}") from None
        except click.ClickException as exc:
            raise PluginError(f"{self.name}: {exc.format_message()}") from None
        except SystemExit as exc:
            raise PluginError(f"plugin {self.name!r} called sys.exit({exc.code!r}) in makeService") from None
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the plugin's own bug: show its frames, not ours
            raise PluginError(f"plugin {self.name!r} failed to make its service: {type(exc).__name__}: {exc}",
                              detail=_plugin_traceback(exc)) from None
        return self._wrap(made)

    def _wrap(self, made: Any) -> Any:
        from twistdlite.service import Application, IService

        if isinstance(made, Application):
            return made
        service = IService(made, None)
        if service is None:
            raise PluginError(f"plugin {self.name!r}: makeService returned {_article(type(made).__name__)}, "
                              "not a twistdlite service")
        application = Application(self.tapname)
        service.setServiceParent(application)
        return application


def _article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _plugin_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without the launcher's frame that called into the plugin."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)[1:]
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong (a SyntaxError's says where)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Broken(PluginError):
    """A plugin that cannot be loaded; ``reason`` is the short form ``--help`` shows."""

    def __init__(self, name: str, origin: str, reason: str) -> None:
        super().__init__(f"plugin {name!r} ({origin}) cannot be loaded: {reason}")
        self.reason = reason


# -- discovery ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _builtin_names() -> tuple:
    import pkgutil

    from twistdlite import plugins as package

    return tuple(sorted(info.name for info in pkgutil.iter_modules(package.__path__)
                        if not info.name.startswith("_")))


def builtin_names() -> list[str]:
    """The built-in plugins (the public modules of :mod:`twistdlite.plugins`), without importing them."""
    return list(_builtin_names())


@functools.lru_cache(maxsize=None)
def _entry_points() -> dict:
    """Name -> entry point of the installed plugins (scanned once per process)."""
    from importlib import metadata

    found = metadata.entry_points()
    if hasattr(found, "select"):
        selected = found.select(group=GROUP)
    else:  # Python 3.9: a dict of groups
        selected = found.get(GROUP, ())  # type: ignore[attr-defined]
    builtin = set(_builtin_names())
    result: dict = {}
    for entry in selected:
        name = entry.name
        if not name or name.startswith("-") or name != name.strip() or name in RESERVED or name in builtin:
            continue
        result.setdefault(name, entry)
    return result


def names() -> list[str]:
    """Every plugin's subcommand, built-in and installed, sorted (scans the entry points)."""
    return sorted(set(_builtin_names()) | set(_entry_points()))


def unknown_message(name: str) -> str:
    """What to say about a subcommand that is no plugin: it lists the plugins there are."""
    return f"No such command {name!r}. Available plugins: {', '.join(names()) or 'none'}."


def _origin(entry: Any) -> str:
    dist = getattr(entry, "dist", None)
    found_in = f", from {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point {entry.name} = {entry.value}{found_in}"


_loaded: dict = {}


def load(name: str) -> Plugin:
    """The plugin ``name``, imported and checked.

    :class:`UnknownPlugin` when there is none; :class:`PluginError` naming it
    when it cannot be loaded. A built-in plugin is found without scanning entry points.
    """
    plugin = _loaded.get(name)
    if plugin is not None:
        return plugin
    if name in _builtin_names():
        module = f"{BUILTIN_PACKAGE}.{name}"
        plugin = _check(name, module, _import_builtin(name, module))
    else:
        entry = _entry_points().get(name)
        if entry is None:
            raise UnknownPlugin(unknown_message(name))
        plugin = _check(name, _origin(entry), _load_entry_point(entry))
    _loaded[name] = plugin
    return plugin


def _import_builtin(name: str, module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _Broken(name, module, _reason(exc)) from None


def _load_entry_point(entry: Any) -> Any:
    origin = _origin(entry)
    if getattr(entry, "pattern", None) is not None and entry.pattern.match(entry.value) is None:
        raise _Broken(entry.name, origin, f"its value {entry.value!r} is not 'module:object'")
    try:
        return entry.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _Broken(entry.name, origin, _reason(exc)) from None


def _check(name: str, origin: str, found: Any) -> Plugin:
    """Make a :class:`Plugin` of what a module or entry point holds, or say what is wrong with it."""
    maker = found
    if isinstance(maker, types.ModuleType):
        maker = getattr(found, "serviceMaker", None)
        if maker is None:
            raise _Broken(name, origin, f"the module {found.__name__} has no serviceMaker")
    if isinstance(maker, type):
        try:
            maker = maker()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _Broken(name, origin, f"cannot instantiate {found!r}: {_reason(exc)}") from None
    if not callable(getattr(maker, "makeService", None)):
        raise _Broken(name, origin, f"{_article(type(maker).__name__)} with no makeService(options) method "
                                    "is not a plugin")
    command = getattr(maker, "options", None)
    if command is None:
        command = click.Command(name)
    elif not isinstance(command, click.Command) or isinstance(command, click.Group):
        kind = "a click.Group" if isinstance(command, click.Group) else _article(type(command).__name__)
        raise _Broken(name, origin, f"its options is {kind}, not a click.Command")
    tapname = getattr(maker, "tapname", None) or getattr(maker, "name", None) or name
    if not isinstance(tapname, str):
        raise _Broken(name, origin, f"its tapname is {_article(type(tapname).__name__)}, not a string")
    description = getattr(maker, "description", None) or ""
    return Plugin(name, origin, maker, tapname, " ".join(str(description).split()), command)


def describe(name: str) -> str:
    """The line ``--help`` shows for plugin ``name`` (what is wrong with it, if it cannot be loaded)."""
    try:
        return load(name).description
    except _Broken as exc:
        return f"[cannot be loaded: {exc.reason}]"
    except LaunchError as exc:
        return f"[cannot be loaded: {exc.message}]"


def build(name: str, args: Sequence[str]) -> Any:
    """The Application plugin ``name`` makes from its command-line arguments ``args``."""
    plugin = load(name)
    return plugin.make_application(plugin.parse(args))


def forget() -> None:
    """Forget what was discovered and loaded, so the next look scans again (for tests)."""
    _loaded.clear()
    _entry_points.cache_clear()
    _builtin_names.cache_clear()


def find(name: str) -> Optional[Plugin]:
    """The plugin ``name``, or None when there is none (:class:`PluginError` when it is broken)."""
    try:
        return load(name)
    except UnknownPlugin:
        return None
