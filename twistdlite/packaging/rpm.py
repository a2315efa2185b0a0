"""``tap2rpm``: a noarch .rpm and its .src.rpm, built with ``rpmbuild -ba`` from a generated spec.

The spec uses ``%systemd_post``, ``%systemd_preun`` and
``%systemd_postun_with_restart`` where the build host defines them, and
equivalent shell where it does not (Debian's rpm, for one).

Beside the packages (and as ``Source1`` in the .src.rpm) goes ``NAME.rpmlintrc``,
the filter a packager keeps for rpmlint: it hides the messages that are no
fault of the package, each with the reason, so ``rpmlint -r NAME.rpmlintrc``
reports no error.
"""

from __future__ import annotations

import os
import re
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


#: A name rpmlint's I18NCheck takes for a language pack: ``-`` and an ISO 639 code at the end (``-app``).
LANGUAGE_SUFFIX_RE = re.compile(r"-([a-z]{2,3})$")


def rpmlintrc(name: str) -> str:
    """``NAME.rpmlintrc``: one rpmlint filter for the messages that are no fault of the package, each with why.

    One filter (alternatives) rather than one per message: rpmlint reports a
    filter that hides nothing as an error, ``unused-rpmlintrc-filter``, and
    whether it takes a short last word of the name for a language depends on its
    copy of ISO 639; the unsigned package's ``no-signature`` always uses the filter.
    """
    reasons = [("no-signature",
                ["tap2rpm never signs (-u/--unsigned is accepted for Twisted's sake): whoever",
                 "publishes the packages signs them (rpm --addsign); then remove this alternative."])]
    suffix = LANGUAGE_SUFFIX_RE.search(name)
    if suffix:
        code = suffix.group(1)
        reasons.append((f"no-dependency-on locales-{code}",
                        [f"rpmlint takes a name ending in -{code} (an ISO 639 language code) for the",
                         f"language pack of {code!r}, which must require locales-{code}; {name} is a service."]))
    lines = [f"# rpmlint's filter for the packages of {name}, written by tap2rpm. Use it as",
             f"#   rpmlint -r {name}.rpmlintrc {name}-VERSION-RELEASE.noarch.rpm {name}-VERSION-RELEASE.src.rpm",
             "# (rpmlint also finds it beside a single package it checks). It hides only these",
             "# errors, none a fault of the package:", "#"]
    for message, why in reasons:
        lines.append(f"# {message}:")
        lines += [f"#   {line}" for line in why]
    lines += ["#", "# One filter for all: rpmlint reports a filter that hides nothing as an error.",
              'addFilter(r" E: (' + "|".join(message for message, _why in reasons) + ')$")', ""]
    return "\n".join(lines)


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
        lintrc = os.path.join(sources, f"{r.name}.rpmlintrc")
        write(lintrc, rpmlintrc(r.name))
        with tarfile.open(os.path.join(sources, f"{r.name}-{r.version}.tar.gz"), "w:gz") as tar:
            tar.add(tree, arcname=f"{r.name}-{r.version}", filter=_normalise)
        spec_path = os.path.join(top, "SPECS", f"{r.name}.spec")
        write(spec_path, spec(prepared))
        run_tool(["rpmbuild", "-ba", "--quiet", "--define", f"_topdir {top}", spec_path], cwd=top,
                 what="rpmbuild", env=dict(os.environ, LC_ALL="C.UTF-8"))
        nvr = f"{r.name}-{r.version}-{RELEASE}"
        built = [os.path.join(top, "RPMS", "noarch", f"{nvr}.noarch.rpm"), os.path.join(top, "SRPMS", f"{nvr}.src.rpm"),
                 lintrc]
        directory = os.path.dirname(os.path.abspath(rpmfile))
        return publish(built, [os.path.abspath(rpmfile)] + [os.path.join(directory, os.path.basename(path))
                                                            for path in built[1:]])


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
