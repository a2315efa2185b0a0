"""What both package formats share: the tools they run, the tree they build from, and publishing the result.

A build happens in a temporary directory; only when every file is made are
they moved to the output directory (each renamed into place), so a failed
build leaves nothing half-written behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import resources
from typing import Dict, List, Optional, Sequence, Union

from twistdlite.launch.errors import LaunchError
from twistdlite.packaging import application, systemd, vendor
from twistdlite.packaging.layout import Layout
from twistdlite.packaging.model import Request


class ToolMissing(LaunchError):
    """A program a build needs is not installed."""


class BuildError(LaunchError):
    """A packaging tool failed."""


def require_tool(program: str, package: str, path: Optional[str] = None) -> str:
    """The full path of ``program``; :class:`ToolMissing` naming the package to install when it is absent."""
    found = shutil.which(program, path=path)
    if found is None:
        raise ToolMissing(f"{program} is not installed: install the {package} package "
                          f"(apt-get install {package}, or dnf install {package})")
    return found


def run_tool(args: Sequence[str], cwd: str, what: str, env: Optional[dict] = None) -> str:
    """Run a packaging tool; :class:`BuildError` with the last line of its output when it fails."""
    try:
        result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise BuildError(f"cannot run {args[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise BuildError(f"{what} failed: {last}")
    return result.stdout


def check_output_dir(path: str) -> str:
    """The absolute directory a package file goes to; :class:`LaunchError` when it is missing or not writable."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise LaunchError(f"output directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise LaunchError(f"output directory {directory!r} is not writable")
    return directory


def template(name: str, values: Dict[str, str]) -> str:
    """The packaged template ``name`` (under ``templates/``) with each ``@KEY@`` replaced."""
    text = resources.files("twistdlite.packaging").joinpath("templates", *name.split("/")).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def write(path: str, content: Union[str, bytes], mode: int = 0o644) -> None:
    """Write ``content`` to ``path`` (its directories made) with ``mode``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def copy_tree(files: Dict[str, Union[str, bytes]], destination: str) -> None:
    """Copy ``{relative path: source file or bytes}`` under ``destination``."""
    for relative, source in files.items():
        target = os.path.join(destination, relative)
        if isinstance(source, bytes):
            write(target, source)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(source, target)
            os.chmod(target, 0o644)


#: Licences whose text Debian keeps in /usr/share/common-licenses.
COMMON_LICENSES = {"Apache-2.0", "GPL-2", "GPL-3", "LGPL-2.1", "LGPL-3", "MPL-2.0", "Artistic", "CC0-1.0"}


def default_description(app_name: str, package: str) -> str:
    """The one-line description when none is given (never starting with the package's name)."""
    if app_name.lower().startswith(package.lower()) or not app_name.strip():
        return f"Service {app_name!r} run by twistdlite"
    return f"{app_name} service run by twistdlite"


class Prepared:
    """An application read and checked, with everything its package carries."""

    def __init__(self, request: Request) -> None:
        self.request = request
        app = application.load(request.app_file, request.app_type)
        self.app_name = str(getattr(app, "name", None) or "twistd")
        self.privileged_ports = application.privileged_ports(app)
        self.privileged = request.privileged or bool(self.privileged_ports)
        #: Distribution packages to depend on for compiled libraries the package cannot carry.
        self.system_packages = application.system_packages(app)
        self.app_files = application.app_files(request.app_file, request.includes)
        self.lib_files = vendor.library_files()
        self.layout = Layout(request.name, os.path.basename(request.app_file), request.app_type, self.app_name)
        self.description = request.description or default_description(self.app_name, request.name)
        #: ``(name, version, licence)`` of each carried distribution.
        self.distributions = [(d.metadata["Name"], d.version, vendor.license_tag(d)) for d in vendor.distributions()]

    def unit(self) -> str:
        """The systemd unit."""
        r = self.request
        return systemd.unit(self.layout, self.description, self.privileged, r.watchdog, r.keep_state)

    def sysusers(self) -> str:
        """The sysusers.d file."""
        return systemd.sysusers(self.layout, self.description)

    def copyright(self) -> str:
        """A plain-text account of what the package carries and under which licences."""
        r = self.request
        import time

        lines = [f"{r.name}: {self.description}", "",
                 f"Copyright {time.gmtime().tm_year} {r.maintainer} <{r.email}> (the packaging)", "",
                 f"The application ({os.path.basename(r.app_file)} and the modules beside it, in",
                 f"{self.layout.appdir}) was packaged by {r.maintainer} <{r.email}> with tap2deb/tap2rpm.",
                 "Its copyright and licence are its authors'; state them here before distributing it.", "",
                 f"The package also carries these Python distributions, in {self.layout.pydir};",
                 "each one's licence files are in its NAME-VERSION.dist-info directory there:", ""]
        for name, version, license_ in self.distributions:
            lines.append(f"  {name} {version}: {license_}")
        common = sorted({tag for _n, _v, tag in self.distributions if tag in COMMON_LICENSES})
        if common:
            lines += ["", "On Debian systems, the complete text of the " + ", ".join(common) + " licence"
                      + ("s" if len(common) > 1 else "") + " can be found in",
                      ", ".join(f"/usr/share/common-licenses/{tag}" for tag in common) + "."]
        return "\n".join(lines) + "\n"


def publish(built: List[str], targets: List[str]) -> List[str]:
    """Move each built file to its target path (all or none): returns the targets."""
    placed: List[str] = []
    try:
        for source, target in zip(built, targets):
            partial = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.part")
            shutil.copyfile(source, partial)
            os.chmod(partial, 0o644)
            os.replace(partial, target)
            placed.append(target)
    except OSError as exc:
        for path in placed:
            try:
                os.unlink(path)
            except OSError:
                pass
        try:
            os.unlink(partial)
        except (OSError, UnboundLocalError):
            pass
        raise LaunchError(f"cannot write {target}: {exc.strerror}") from None
    return targets


def workdir() -> "tempfile.TemporaryDirectory[str]":
    """A temporary directory for one build, removed when done."""
    return tempfile.TemporaryDirectory(prefix="tap2pkg-")
