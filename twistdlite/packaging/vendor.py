"""twistdlite and its pure-Python dependencies, copied from the installed distributions.

Found through :mod:`importlib.metadata`: the requirements of ``twistdlite``
(without extras), followed recursively; each distribution's top-level modules
from its file list, copied from where Python imports them (so an editable
install works too), without byte code; its ``METADATA`` and licence files go in
a ``NAME-VERSION.dist-info`` beside them, so the versions stay visible.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from typing import Dict, List, Set

from twistdlite.launch.errors import LaunchError

ROOT_DISTRIBUTION = "twistdlite"
#: Parts of the carried packages an installed application never runs.
NOT_CARRIED = ("twistdlite/packaging",)
LICENSE_RE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.I)


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s;\[<>=!~(]", requirement.strip(), 1)[0]


def distributions(root: str = ROOT_DISTRIBUTION) -> List[importlib.metadata.Distribution]:
    """``root``'s distribution and, recursively, those it requires (extras and markers that do not apply left out)."""
    found: Dict[str, importlib.metadata.Distribution] = {}
    pending = [root]
    while pending:
        name = pending.pop(0)
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise LaunchError(f"{name} is not installed in this Python ({sys.executable}); "
                              "the package needs to carry it") from None
        found[key] = dist
        for requirement in dist.requires or []:
            if not _marker_applies(requirement):
                continue
            pending.append(_requirement_name(requirement))
    return list(found.values())


def _marker_applies(requirement: str) -> bool:
    """False for a requirement behind an extra or a marker this host does not meet."""
    if ";" not in requirement:
        return True
    marker = requirement.split(";", 1)[1]
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker  # type: ignore[import-not-found]
    except ImportError:
        return "windows" not in marker.lower() and "darwin" not in marker.lower()
    return bool(Marker(marker).evaluate())


def top_level(dist: importlib.metadata.Distribution) -> List[str]:
    """The names a distribution's modules are imported by."""
    text = dist.read_text("top_level.txt")
    if text:
        return sorted({line.strip() for line in text.splitlines() if line.strip()})
    names: Set[str] = set()
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0] == ".." or parts[0].endswith((".dist-info", ".egg-info", ".pth", ".data")):
            continue
        if len(parts) > 1 and parts[0] not in ("tests", "bin"):
            names.add(parts[0])
        elif parts[0].endswith(".py"):
            names.add(parts[0][:-3])
    if not names or dist.metadata["Name"].lower() == ROOT_DISTRIBUTION:
        names = {re.sub(r"[-.]", "_", dist.metadata["Name"]).lower()} if not names else names
    return sorted(n for n in names if importlib.util.find_spec(n) is not None)


def _module_files(name: str) -> Dict[str, str]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise LaunchError(f"cannot find the module {name!r} to carry in the package")
    files: Dict[str, str] = {}
    if spec.submodule_search_locations:
        base = os.path.dirname(spec.origin)
        skipped = {os.path.join(base, *part.split("/")[1:]) for part in NOT_CARRIED if part.split("/")[0] == name}
        for top, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and os.path.join(top, d) not in skipped)
            for entry in sorted(names):
                if entry.endswith((".pyc", ".pyo")):
                    continue
                if entry.endswith((".so", ".pyd", ".dll", ".dylib")):
                    raise LaunchError(f"{name} has compiled code ({entry}); only pure-Python modules can be "
                                      "carried in an architecture-independent package")
                source = os.path.join(top, entry)
                files[os.path.join(name, os.path.relpath(source, base))] = source
    elif spec.origin.endswith(".py"):
        files[os.path.basename(spec.origin)] = spec.origin
    else:
        raise LaunchError(f"{name} is compiled ({spec.origin}); only pure-Python modules can be carried")
    return files


def library_files() -> Dict[str, bytes | str]:
    """What goes in ``/usr/lib/NAME/lib``: ``{path: source file or bytes}``."""
    files: Dict[str, bytes | str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        for module in top_level(dist):
            files.update(_module_files(module))
        info = f"{re.sub(r'[-.]', '_', name)}-{dist.version}.dist-info"
        metadata = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or f"Name: {name}\nVersion: {dist.version}\n"
        files[f"{info}/METADATA"] = metadata.encode()
        for file in dist.files or []:
            if len(file.parts) > 1 and file.parts[0].endswith(".dist-info") and LICENSE_RE.search(file.name):
                files[f"{info}/{file.name}"] = str(file.locate())
    return files


_CLASSIFIERS = {"Apache Software License": "Apache-2.0", "MIT License": "MIT", "BSD License": "BSD-3-Clause",
                "ISC License (ISCL)": "ISC", "Python Software Foundation License": "PSF-2.0"}


def license_tag(dist: importlib.metadata.Distribution) -> str:
    """A distribution's licence as a short identifier (``MIT``, ``Apache-2.0``...), or ``unknown``."""
    metadata = dist.metadata
    expression = metadata.get("License-Expression")
    if expression:
        return expression.strip()
    for classifier in metadata.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            tag = _CLASSIFIERS.get(classifier.rsplit("::", 1)[1].strip())
            if tag:
                return tag
    text = (metadata.get("License") or "").strip()
    if text and "\n" not in text and len(text) < 40 and text.upper() != "UNKNOWN":
        return text
    return "unknown"
