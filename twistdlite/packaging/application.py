"""Read the application through the launcher's loader and find what travels with it."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional, Sequence

from twistdlite.launch.errors import LoadError

#: Directory names never copied with an application (caches, VCS data, virtual environments).
SKIPPED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".mypy_cache",
                ".pytest_cache", "node_modules"}
#: Packages the package carries itself (an application directory holding them is a source checkout).
CARRIED = {"twistdlite", "click", "daemon", "lockfile"}


def guess_type(path: str, given: Optional[str]) -> str:
    """``tap`` or ``python`` (a ``.tac``): as given with ``-y``, else from the file's extension."""
    if given:
        return given
    return "python" if path.endswith((".tac", ".py")) else "tap"


def load(path: str, app_type: str) -> Any:
    """The application in ``path`` (a ``.tac`` run as twistdlite would, or a ``.tap``), checked."""
    if not os.path.exists(path):
        raise LoadError(f"application file {path!r} does not exist")
    if os.path.isdir(path) or not os.access(path, os.R_OK):
        raise LoadError(f"application file {path!r} is not a readable file")
    from twistdlite.launch import loader

    if app_type == "python":
        return loader.load_tac(path)
    from twistdlite.launch.options import Options

    return loader.load_tap(path, Options(file=path))


def services(root: Any) -> Iterator[Any]:
    """Every service of the tree under ``root``, ``root`` first."""
    yield root
    try:
        children = list(root)
    except TypeError:
        return
    for child in children:
        yield from services(child)


def privileged_ports(application: Any) -> List[int]:
    """The ports below 1024 the application's servers listen on (they need CAP_NET_BIND_SERVICE)."""
    from twistdlite import internet

    servers = tuple(getattr(internet, name) for name in ("TCPServer", "SSLServer", "UDPServer", "MulticastServer")
                    if hasattr(internet, name))
    found = []
    for service in services(application):
        port: Any = None
        if isinstance(service, servers):
            port = service.port
        elif hasattr(service, "endpoint") and hasattr(service.endpoint, "_make_port"):
            port = getattr(service.endpoint, "port", None)
        if isinstance(port, int) and 0 < port < 1024:
            found.append(port)
    return sorted(set(found))


#: Parts of twistdlite that need a compiled library an architecture-independent package cannot
#: carry: the distributions' package that provides it (same name in Debian and Fedora).
COMPILED_NEEDS = {"twistdlite.web": "python3-httptools"}


def system_packages(application: Any) -> List[str]:
    """The distribution packages the application needs besides ``python3`` (twistdlite.web: httptools)."""
    found = set()
    for service in services(application):
        for obj in (service, getattr(service, "factory", None)):
            if obj is None:
                continue
            for cls in type(obj).__mro__:
                module = cls.__module__ or ""
                for prefix, package in COMPILED_NEEDS.items():
                    if module == prefix or module.startswith(prefix + "."):
                        found.add(package)
    return sorted(found)


def _walk(directory: str) -> Iterator[str]:
    for top, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")) and not name.startswith("."):
                yield os.path.join(top, name)


def app_files(app_file: str, includes: Sequence[str] = ()) -> Dict[str, str]:
    """What goes in ``/usr/lib/NAME/app``: ``{path in the package: source file}``.

    The application file, the ``*.py`` modules and the packages (directories with an
    ``__init__.py``) of its own directory, and every ``--include`` (a file, or a
    directory copied whole under its own name).
    """
    files = {os.path.basename(app_file): os.path.abspath(app_file)}
    directory = os.path.dirname(os.path.abspath(app_file))
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.startswith(".") or entry in CARRIED:
            continue
        if entry.endswith(".py") and os.path.isfile(path):
            files.setdefault(entry, path)
        elif os.path.isdir(path) and entry not in SKIPPED_DIRS and os.path.isfile(os.path.join(path, "__init__.py")):
            for source in _walk(path):
                files.setdefault(os.path.relpath(source, directory), source)
    for include in includes:
        if not os.path.exists(include):
            raise LoadError(f"--include {include!r}: no such file or directory")
        include = os.path.abspath(include)
        base = os.path.basename(include.rstrip(os.sep))
        if os.path.isdir(include):
            for source in _walk(include):
                files[os.path.join(base, os.path.relpath(source, include))] = source
        else:
            files[base] = include
    for source in files.values():
        if not os.access(source, os.R_OK):
            raise LoadError(f"cannot read {source!r}, which the package would carry")
    return files
