"""Users, groups and dropping privileges (twistdlite/launch/privileges.py), in-process with a fake kernel."""

from __future__ import annotations

import os
import pwd

import pytest

from twistdlite.launch import privileges
from twistdlite.launch.errors import LaunchError, UsageError
from twistdlite.launch.options import Options
from twistdlite.launch.runner import process_ids
from twistdlite.service import Application


class FakeKernel:
    """Stands in for the id calls of ``os``: records them, refuses what it is told to."""

    def __init__(self, uid: int = 0, gid: int = 0) -> None:
        self.uid = self.euid = uid
        self.gid = gid
        self.calls: list = []
        self.refuse: set = set()
        self.root_sticks = False

    def install(self, monkeypatch) -> "FakeKernel":
        monkeypatch.setattr(os, "getuid", lambda: self.uid)
        monkeypatch.setattr(os, "geteuid", lambda: self.euid)
        monkeypatch.setattr(os, "getgid", lambda: self.gid)
        for name in ("initgroups", "setgroups", "setgid", "setegid", "setuid", "seteuid"):
            monkeypatch.setattr(os, name, self._recorder(name))
        return self

    def _recorder(self, name):
        def call(*args):
            if name in self.refuse:
                raise PermissionError(1, "Operation not permitted")
            if name == "setuid" and args == (0,) and self.uid != 0:
                if not self.root_sticks:
                    raise PermissionError(1, "Operation not permitted")
            self.calls.append((name, *args))
            if name == "setuid":
                self.uid = self.euid = args[0]
            elif name == "seteuid":
                self.euid = args[0]
        return call


@pytest.fixture
def kernel(monkeypatch):
    return FakeKernel().install(monkeypatch)


NOBODY = pwd.getpwnam("nobody")


def test_parse_uid_and_gid_take_names_or_numbers():
    assert privileges.parse_uid("0") == 0
    assert privileges.parse_uid("nobody") == NOBODY.pw_uid
    assert privileges.parse_gid("0") == 0
    import grp

    assert privileges.parse_gid(grp.getgrgid(NOBODY.pw_gid).gr_name) == NOBODY.pw_gid


def test_unknown_user_and_group():
    with pytest.raises(LaunchError, match="^unknown user: no-such-user-x$"):
        privileges.parse_uid("no-such-user-x")
    with pytest.raises(LaunchError, match="^unknown group: no-such-group-x$"):
        privileges.parse_gid("no-such-group-x")
    with pytest.raises(LaunchError, match="^unknown user: -1$"):
        privileges.parse_uid("-1")


@pytest.mark.parametrize("text", ["4294967295", "4294967296", "99999999999999999999", "0" * 11 + "1"])
def test_ids_past_the_maximum_are_usage_errors(text):
    with pytest.raises(UsageError, match=rf"^-u/--uid {text}: user and group ids go up to 4294967294$"):
        privileges.parse_uid(text)
    with pytest.raises(UsageError, match=rf"^-g/--gid {text}: user and group ids go up to 4294967294$"):
        privileges.parse_gid(text)
    assert privileges.parse_uid("4294967294") == privileges.parse_gid("4294967294") == 4294967294


@pytest.mark.parametrize("text", ["\u00b2", "\u0663", "a\0b"])
def test_digits_that_are_not_ascii_and_nul_bytes_are_unknown_names(text):
    with pytest.raises(LaunchError, match="^unknown user: "):
        privileges.parse_uid(text)
    with pytest.raises(LaunchError, match="^unknown group: "):
        privileges.parse_gid(text)


@pytest.mark.parametrize("uid, gid", [(2**32, 0), (0, 2**40), (-1, 0), (0, "0"), (True, 0)])
def test_an_applications_ids_out_of_range_fail_in_one_line(uid, gid):
    with pytest.raises(LaunchError, match="^invalid (uid|gid) .*: ids are whole numbers from 0 to 4294967294$"):
        privileges.prepare(uid, gid)


def test_prepare_takes_the_users_primary_group(kernel):
    assert privileges.prepare(NOBODY.pw_uid, None) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert privileges.prepare(NOBODY.pw_uid, 5) == (NOBODY.pw_uid, 5)
    assert privileges.prepare(None, 5) == (None, 5)
    assert privileges.prepare(None, None) == (None, None)


def test_a_uid_without_a_user_needs_a_group(kernel):
    unused = next(uid for uid in range(40000, 60000) if not _has_user(uid))
    with pytest.raises(LaunchError, match=f"^uid {unused} has no entry in the user database: give its group with -g$"):
        privileges.prepare(unused, None)
    assert privileges.prepare(unused, 40000) == (unused, 40000)


def _has_user(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def test_only_root_may_switch(monkeypatch):
    FakeKernel(uid=1000, gid=1000).install(monkeypatch)
    with pytest.raises(LaunchError, match=r"^cannot switch to uid 0: only root can change user \(running as uid 1000\)$"):
        privileges.prepare(0, 0)
    with pytest.raises(LaunchError, match=r"^cannot switch to gid 0: only root can change group"):
        privileges.prepare(None, 0)
    assert privileges.prepare(1000, 1000) == (1000, 1000)  # our own ids are fine
    privileges.drop(1000, 1000)  # and nothing to do


def test_drop_as_root_sets_groups_then_gid_then_uid_and_checks_it_sticks(kernel):
    privileges.drop(NOBODY.pw_uid, None)
    assert kernel.calls == [("initgroups", "nobody", NOBODY.pw_gid), ("setgid", NOBODY.pw_gid),
                            ("setuid", NOBODY.pw_uid)]


def test_drop_that_does_not_stick_is_an_error(kernel):
    kernel.root_sticks = True
    with pytest.raises(LaunchError, match="did not stick: setuid\\(0\\) still works"):
        privileges.drop(NOBODY.pw_uid, None)


def test_drop_only_the_effective_ids(kernel):
    privileges.drop(NOBODY.pw_uid, NOBODY.pw_gid, euid_only=True)
    assert kernel.calls == [("initgroups", "nobody", NOBODY.pw_gid), ("setegid", NOBODY.pw_gid),
                            ("seteuid", NOBODY.pw_uid)]
    assert kernel.uid == 0 and kernel.euid == NOBODY.pw_uid


def test_drop_only_the_group(kernel):
    privileges.drop(None, 4242)
    assert kernel.calls == [("setgroups", [4242]), ("setgid", 4242)]


def test_drop_nothing(kernel):
    privileges.drop(None, None)
    assert kernel.calls == []


@pytest.mark.parametrize("refused", ["initgroups", "setgid", "setuid"])
def test_a_refused_drop(kernel, refused):
    kernel.refuse.add(refused)
    with pytest.raises(LaunchError, match=f"^cannot drop privileges to uid={NOBODY.pw_uid} gid={NOBODY.pw_gid}: "
                                          "Operation not permitted$"):
        privileges.drop(NOBODY.pw_uid, None)


def test_the_applications_ids_apply_unless_options_say_otherwise():
    app = Application("a", uid=11, gid=12)
    assert process_ids(Options(), app) == (11, 12)
    assert process_ids(Options(uid=21), app) == (21, 12)
    assert process_ids(Options(uid=21, gid=22), app) == (21, 22)
    assert process_ids(Options(), Application("b")) == (None, None)


@pytest.mark.parametrize("text,mask", [("022", 0o022), ("0077", 0o077), ("0", 0), ("777", 0o777)])
def test_parse_umask(text, mask):
    assert privileges.parse_umask(text) == mask


@pytest.mark.parametrize("text", ["999", "abc", "8", "1000", "-1", ""])
def test_parse_umask_refuses_bad_input(text):
    with pytest.raises(UsageError, match="^invalid umask"):
        privileges.parse_umask(text)
