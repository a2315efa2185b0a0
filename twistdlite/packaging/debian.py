"""``tap2deb``: a Debian source package (.dsc + tarball) and the Architecture: all .deb built from it.

The source package's ``debian/rules`` needs only dpkg-dev (no debhelper); the
binary package is built from it with ``dpkg-buildpackage``, exactly as a
packager polishing the source package would rebuild it.
"""

from __future__ import annotations

import email.utils
import os
import shlex
from typing import List, Optional

from twistdlite.packaging.build import (Prepared, copy_tree, publish, require_tool, run_tool, template, workdir,
                                        write)


def description_field(short: str, long: str) -> str:
    """A control file's Description: the synopsis, then the long text with blank lines as ``' .'``."""
    body = []
    for line in long.strip().splitlines() or [short]:
        body.append(" ." if not line.strip() else " " + line.rstrip())
    return f"Description: {short}\n" + "\n".join(body)


def control(prepared: Prepared) -> str:
    """``debian/control``."""
    r = prepared.request
    return (f"Source: {r.name}\nSection: net\nPriority: optional\n"
            f"Maintainer: {r.maintainer} <{r.email}>\nRules-Requires-Root: no\nStandards-Version: 4.6.2\n\n"
            f"Package: {r.name}\nArchitecture: all\n"
            f"Depends: {', '.join(['python3 (>= 3.9)', 'adduser'] + prepared.system_packages)}\n"
            f"{description_field(prepared.description, r.long_description)}\n")


def changelog(prepared: Prepared, when: Optional[float] = None) -> str:
    """``debian/changelog``: one entry for this version."""
    r = prepared.request
    date = email.utils.formatdate(when, localtime=False)
    return (f"{r.name} ({r.version}) unstable; urgency=medium\n\n"
            f"  * Packaged by tap2deb from {os.path.basename(r.app_file)}.\n\n"
            f" -- {r.maintainer} <{r.email}>  {date}\n")


def source_tree(prepared: Prepared, top: str) -> str:
    """Write the source package's tree under ``top``; returns its directory."""
    r = prepared.request
    layout = prepared.layout
    tree = os.path.join(top, f"{r.name}-{r.version}")
    copy_tree(prepared.app_files, os.path.join(tree, "app"))
    copy_tree(prepared.lib_files, os.path.join(tree, "lib"))
    debian = os.path.join(tree, "debian")
    values = {"NAME": r.name, "SHORT": prepared.description.replace('"', "'"), "PYTHONPATH": layout.pythonpath,
              "SOURCE": " ".join(shlex.quote(arg) for arg in layout.source_args())}
    write(os.path.join(debian, "control"), control(prepared))
    write(os.path.join(debian, "changelog"), changelog(prepared))
    write(os.path.join(debian, "copyright"), prepared.copyright())
    write(os.path.join(debian, "source", "format"), "3.0 (native)\n")
    write(os.path.join(debian, "rules"), template("debian/rules", values), 0o755)
    for script in ("postinst", "prerm", "postrm"):
        write(os.path.join(debian, script), template(f"debian/{script}", values), 0o755)
    write(os.path.join(debian, f"{r.name}.init"), template("debian/init", values), 0o755)
    write(os.path.join(debian, f"{r.name}.service"), prepared.unit())
    write(os.path.join(debian, f"{r.name}.sysusers"), prepared.sysusers())
    return tree


def check_tools() -> None:
    """:class:`ToolMissing` unless dpkg-deb, dpkg-buildpackage and make are installed."""
    require_tool("dpkg-deb", "dpkg")
    require_tool("dpkg-buildpackage", "dpkg-dev")
    require_tool("make", "make")


def build(prepared: Prepared, debfile: str) -> List[str]:
    """Build the .deb at ``debfile`` and the source package beside it; returns the files written."""
    check_tools()
    r = prepared.request
    with workdir() as top:
        tree = source_tree(prepared, top)
        env = dict(os.environ, LC_ALL="C.UTF-8", DEB_BUILD_OPTIONS="")
        env.pop("MAKEFLAGS", None)
        run_tool(["dpkg-buildpackage", "-us", "-uc", "-d"],
                 cwd=tree, what="dpkg-buildpackage", env=env)
        base = f"{r.name}_{r.version}"
        built = [os.path.join(top, f"{base}_all.deb"), os.path.join(top, f"{base}.dsc"),
                 os.path.join(top, f"{base}.tar.xz")]
        directory = os.path.dirname(os.path.abspath(debfile))
        targets = [os.path.abspath(debfile)] + [os.path.join(directory, os.path.basename(p)) for p in built[1:]]
        return publish(built, targets)
