"""Users, groups and dropping privileges (behind small functions, so tests can fake them)."""

from __future__ import annotations

import os
from typing import Any, Optional

from twistdlite.launch.errors import LaunchError, UsageError


#: The largest user or group id (2**32 - 2: the kernel reserves 2**32 - 1, i.e. -1, for "no change").
MAX_ID = 2**32 - 2


def _number(value: str, option: str) -> Optional[int]:
    """``value`` as an id if it is a number (:class:`UsageError` past :data:`MAX_ID`), else None."""
    if not (value.isascii() and value.isdigit()):
        return None
    if len(value) > 10 or int(value) > MAX_ID:
        raise UsageError(f"{option} {value}: user and group ids go up to {MAX_ID}")
    return int(value)


def check_id(value: object, what: str) -> int:
    """``value`` if it is a usable user/group id; :class:`LaunchError` otherwise (e.g. an Application's uid)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise LaunchError(f"invalid {what} {value!r}: ids are whole numbers from 0 to {MAX_ID}")
    return value


def parse_uid(value: str) -> int:
    """A user name or number to a uid; :class:`UsageError` past :data:`MAX_ID`, :class:`LaunchError` for an unknown user."""
    number = _number(value, "-u/--uid")
    if number is not None:
        return number
    import pwd

    try:
        return pwd.getpwnam(value).pw_uid
    except (KeyError, ValueError):  # ValueError: a name with a NUL byte
        raise LaunchError(f"unknown user: {value}") from None


def parse_gid(value: str) -> int:
    """A group name or number to a gid; :class:`UsageError` past :data:`MAX_ID`, :class:`LaunchError` for an unknown group."""
    number = _number(value, "-g/--gid")
    if number is not None:
        return number
    import grp

    try:
        return grp.getgrnam(value).gr_gid
    except (KeyError, ValueError):
        raise LaunchError(f"unknown group: {value}") from None


def check_can_switch(uid: Optional[int], gid: Optional[int]) -> None:
    """Fail early when a switch of user or group is asked for and we are not root."""
    if os.getuid() == 0:
        return
    if uid is not None and uid != os.getuid():
        raise LaunchError(f"cannot switch to uid {uid}: only root can change user (running as uid {os.getuid()})")
    if gid is not None and gid != os.getgid():
        raise LaunchError(f"cannot switch to gid {gid}: only root can change group (running as uid {os.getuid()})")


def prepare(uid: Optional[int], gid: Optional[int]) -> tuple[Optional[int], Optional[int]]:
    """The ids to switch to, checked before anything happens: ``(uid, gid)``.

    With a uid and no gid, the gid is the user's primary group (as twistd
    does); a uid with no entry in the user database then needs ``-g``.
    """
    if uid is not None:
        check_id(uid, "uid")
    if gid is not None:
        check_id(gid, "gid")
    if uid is not None:
        entry = _user_entry(uid)
        if gid is None:
            if entry is None:
                raise LaunchError(f"uid {uid} has no entry in the user database: give its group with -g")
            gid = entry.pw_gid
    check_can_switch(uid, gid)
    return uid, gid


#: uid -> user name, as :func:`prepare` found it before ``--chroot`` (the user database is
#: outside the jail), for :func:`drop` to set the user's groups with.
_user_names: dict = {}


def _user_entry(uid: int) -> Any:
    """The user database's entry for ``uid`` (None when it has none), its name remembered."""
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return None
    _user_names[uid] = entry.pw_name
    return entry


def _user_name(uid: int) -> Optional[str]:
    """The name of ``uid``: from the user database, else as found before ``--chroot``."""
    entry = _user_entry(uid)
    return entry.pw_name if entry is not None else _user_names.get(uid)


def drop(uid: Optional[int], gid: Optional[int], euid_only: bool = False) -> None:
    """Switch to ``uid``/``gid`` (with the user's supplementary groups), for good.

    With ``euid_only`` only the effective ids change (twistd's ``--euid``).
    A full switch away from root is verified: if ``setuid(0)`` still works
    afterwards, :class:`LaunchError`.
    """
    if uid is None and gid is None:
        return
    uid, gid = prepare(uid, gid)
    if os.getuid() != 0 and os.geteuid() != 0:
        return  # nothing to change: check_can_switch accepted our own ids
    try:
        name = _user_name(uid) if uid is not None else None
        if name is not None:
            os.initgroups(name, gid)
        else:
            os.setgroups([gid])
        if euid_only:
            if gid is not None:
                os.setegid(gid)
            if uid is not None:
                os.seteuid(uid)
        else:
            if gid is not None:
                os.setgid(gid)
            if uid is not None:
                os.setuid(uid)
    except OSError as exc:
        raise LaunchError(f"cannot drop privileges to uid={uid} gid={gid}: {exc.strerror}") from None
    if not euid_only and uid is not None and uid != 0:
        _check_cannot_regain_root(uid)


def _check_cannot_regain_root(uid: int) -> None:
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise LaunchError(f"dropping privileges to uid {uid} did not stick: setuid(0) still works")


def parse_umask(value: str) -> int:
    """An octal umask string to an int; :class:`UsageError` when malformed."""
    try:
        mask = int(value, 8)
    except ValueError:
        raise UsageError(f"invalid umask {value!r}: expected an octal number such as 022") from None
    if not 0 <= mask <= 0o777:
        raise UsageError(f"invalid umask {value!r}: must be between 000 and 777")
    return mask
