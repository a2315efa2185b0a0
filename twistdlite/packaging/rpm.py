"""``tap2rpm``: a noarch .rpm and its .src.rpm, built with ``rpmbuild -ba`` from a generated spec.

The spec uses ``%systemd_post``, ``%systemd_preun`` and
``%systemd_postun_with_restart`` where the build host defines them, and
equivalent shell where it does not (Debian's rpm, for one).
"""

from __future__ import annotations

import os
import tarfile
import time
from typing import List

from twistdlite.packaging.build import (Prepared, copy_tree, publish, require_tool, run_tool, template, workdir,
                                        write)

RELEASE = "1"


def license_of(prepared: Prepared) -> str:
    """The License: tag: the carried distributions' licences (the application's is its author's to add)."""
    found: List[str] = []
    for _name, _version, tag in prepared.distributions:
        if tag != "unknown" and tag not in found:
            found.append(tag)
    return " AND ".join(found) or "MIT"


def spec(prepared: Prepared) -> str:
    """The spec file."""
    r = prepared.request
    date = time.strftime("%a %b %d %Y", time.gmtime())
    values = {"NAME": r.name, "VERSION": r.version, "RELEASE": RELEASE,
              "SUMMARY": prepared.description.replace("%", "%%"),
              "LICENSE": license_of(prepared), "DESCRIPTION": r.long_description.strip().replace("%", "%%"),
              "GECOS": prepared.description.replace('"', "'").replace("%", "%%")[:60],
              "DATE": date, "PACKAGER": f"{r.maintainer} <{r.email}>".replace("%", "%%"),
              "APPFILE": os.path.basename(r.app_file).replace("%", "%%"),
              "REQUIRES": "".join(f"Requires:       {package}\n" for package in prepared.system_packages)}
    return template("rpm/spec", values)


def check_tools() -> None:
    """:class:`ToolMissing` unless rpmbuild is installed."""
    require_tool("rpmbuild", "rpm")


def build(prepared: Prepared, rpmfile: str) -> List[str]:
    """Build the .rpm at ``rpmfile`` and the .src.rpm beside it; returns the files written."""
    check_tools()
    r = prepared.request
    with workdir() as top:
        tree = os.path.join(top, "src", f"{r.name}-{r.version}")
        copy_tree(prepared.app_files, os.path.join(tree, "app"))
        copy_tree(prepared.lib_files, os.path.join(tree, "lib"))
        write(os.path.join(tree, f"{r.name}.service"), prepared.unit())
        write(os.path.join(tree, f"{r.name}.sysusers"), prepared.sysusers())
        write(os.path.join(tree, "COPYRIGHT"), prepared.copyright())
        sources = os.path.join(top, "SOURCES")
        os.makedirs(sources)
        with tarfile.open(os.path.join(sources, f"{r.name}-{r.version}.tar.gz"), "w:gz") as tar:
            tar.add(tree, arcname=f"{r.name}-{r.version}", filter=_normalise)
        spec_path = os.path.join(top, "SPECS", f"{r.name}.spec")
        write(spec_path, spec(prepared))
        run_tool(["rpmbuild", "-ba", "--quiet", "--define", f"_topdir {top}", spec_path], cwd=top,
                 what="rpmbuild", env=dict(os.environ, LC_ALL="C.UTF-8"))
        nvr = f"{r.name}-{r.version}-{RELEASE}"
        built = [os.path.join(top, "RPMS", "noarch", f"{nvr}.noarch.rpm"), os.path.join(top, "SRPMS", f"{nvr}.src.rpm")]
        directory = os.path.dirname(os.path.abspath(rpmfile))
        return publish(built, [os.path.abspath(rpmfile), os.path.join(directory, os.path.basename(built[1]))])


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
