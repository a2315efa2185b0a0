"""What a package is made of: the validated, immutable request ``tap2deb``/``tap2rpm`` build from."""

from __future__ import annotations

import re
from typing import Optional, Tuple

from twistdlite.launch.errors import UsageError

#: Package names valid at once as a Debian and RPM package name and as a system user name.
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
NAME_RULE = "2 to 32 characters: lower-case letters, digits and '-', starting with a letter"
#: Versions valid as a Debian (native) and as an RPM version.
VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~]*$")
VERSION_RULE = "a digit first, then only letters, digits, '.', '+' and '~' (e.g. 1.0 or 2.3.1)"
MAINTAINER_RE = re.compile(r"^\s*([^<>@\s][^<>@]*?)\s*<([^<>@\s]+@[^<>@\s]+\.?[^<>@\s]*)>\s*$")


def check_name(name: str) -> str:
    """``name`` if it is a valid package name; :class:`UsageError` saying what is valid otherwise."""
    if not NAME_RE.match(name):
        raise UsageError(f"invalid package name {name!r}: a package name is {NAME_RULE}")
    return name


def default_name(stem: str) -> Optional[str]:
    """The file stem made a valid package name (``reverse_app`` -> ``reverse-app``), or None."""
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:32].rstrip("-")
    return name if NAME_RE.match(name) else None


def check_version(version: str) -> str:
    """``version`` if it is valid for both package formats; :class:`UsageError` otherwise."""
    if not VERSION_RE.match(version):
        raise UsageError(f"invalid version {version!r}: a version is {VERSION_RULE}")
    return version


def parse_maintainer(text: str) -> Tuple[str, str]:
    """``"Name <email>"`` as ``(name, email)``; :class:`UsageError` when it is not of that form."""
    match = MAINTAINER_RE.match(text)
    if not match:
        raise UsageError(f"invalid maintainer {text!r}: give it as \"Full Name <user@example.org>\"")
    return match.group(1), match.group(2)


class Request:
    """Everything a build needs, validated by the command line. Immutable."""

    __slots__ = ("name", "version", "maintainer", "email", "description", "long_description",
                 "app_file", "app_type", "includes", "privileged", "watchdog", "keep_state", "quiet")

    def __init__(self, *, name: str, version: str, maintainer: str, email: str, description: str,
                 long_description: str, app_file: str, app_type: str, includes: Tuple[str, ...] = (),
                 privileged: bool = False, watchdog: Optional[float] = None, keep_state: bool = False,
                 quiet: bool = False) -> None:
        values = dict(name=name, version=version, maintainer=maintainer, email=email,
                      description=description, long_description=long_description, app_file=app_file,
                      app_type=app_type, includes=tuple(includes), privileged=privileged,
                      watchdog=watchdog, keep_state=keep_state, quiet=quiet)
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Request is immutable: cannot set {name!r}")

    def __repr__(self) -> str:
        return f"Request(name={self.name!r}, version={self.version!r}, app_file={self.app_file!r})"
