"""Writing and reading .tap files: atomic 0600 saves, symlinks replaced not followed, unsafe files refused."""

from __future__ import annotations

import errno
import logging
import os
import pickle
import stat
import sys

import pytest

from support import wait_until
from twistdlite import service
from twistdlite.launch import loader, persist
from twistdlite.launch.errors import LaunchError, LoadError
from twistdlite.launch.options import Options

ROOT = os.geteuid() == 0


def make_app(name: str = "App", children: int = 2) -> service.Application:
    app = service.Application(name)
    for index in range(children):
        child = service.Service()
        child.setName(f"child{index}")
        child.setServiceParent(app)
    return app


def leftovers(directory) -> list:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


class Marker:
    """Unpickling this creates a file: proof that a .tap was (or was not) unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- atomic writes --------------------------------------------------------------------

def test_save_writes_mode_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        persist.save(make_app(), str(tmp_path / "App-shutdown.tap"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "App-shutdown.tap").stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_save_replaces_a_planted_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "App-shutdown.tap"
    link.symlink_to(victim)
    persist.save(make_app(), str(link))
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and link.is_file()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    app, _ = persist.load(str(link))
    assert app.name == "App"


def test_save_does_not_create_the_target_of_a_dangling_symlink(tmp_path):
    target = tmp_path / "elsewhere" / "created-by-attacker"
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "App-shutdown.tap"
    link.symlink_to(target)
    persist.save(make_app(), str(link))
    assert not target.exists() and link.is_file() and not link.is_symlink()


def test_save_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(f"fsync {kind}")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    persist.save(make_app(), str(tmp_path / "a.tap"))
    assert events == ["fsync file", "rename", "fsync dir"]


def test_full_disk_leaves_the_previous_tap_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "App-shutdown.tap"
    persist.save(make_app(children=1), str(path))
    before = path.read_bytes()

    def full(fd, chunks):
        os.write(fd, chunks[0][:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(persist, "_write_all", full)
    with pytest.raises(LaunchError) as info:
        persist.save(make_app(children=5), str(path))
    assert str(info.value) == (f"cannot save {path}: No space left on device (in {tmp_path}); "
                               f"{path} was not changed")
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_failed_rename_leaves_no_temporary_file(tmp_path):
    (tmp_path / "App-shutdown.tap").mkdir()  # rename over a directory fails
    with pytest.raises(LaunchError, match="cannot save .*App-shutdown.tap: Is a directory"):
        persist.save(make_app(), str(tmp_path / "App-shutdown.tap"))
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(ROOT, reason="root writes into any directory (tested end to end with -u nobody)")
def test_unwritable_directory(tmp_path):
    path = tmp_path / "App-shutdown.tap"
    persist.save(make_app(), str(path))
    before = path.read_bytes()
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(LaunchError, match="Permission denied .in .*; .* was not changed"):
            persist.save(make_app(children=3), str(path))
    finally:
        tmp_path.chmod(0o700)
    assert path.read_bytes() == before


def test_missing_directory(tmp_path):
    with pytest.raises(LaunchError, match="No such file or directory"):
        persist.save(make_app(), str(tmp_path / "gone" / "a.tap"))


def test_relative_path_saves_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    persist.save(make_app(), "App-shutdown.tap")
    assert (tmp_path / "App-shutdown.tap").is_file() and leftovers(tmp_path) == []


# -- names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("Counter", "Counter-shutdown.tap"),
    ("a/../b", "a_.._b-shutdown.tap"),
    ("", "twistd-shutdown.tap"),
    (None, "twistd-shutdown.tap"),
])
def test_shutdown_tap_path(name, expected):
    app = service.MultiService()
    app.name = name
    assert persist.shutdown_tap_path(app) == expected


# -- loading ------------------------------------------------------------------------------

def test_round_trip_keeps_the_tree(tmp_path):
    path = str(tmp_path / "a.tap")
    persist.save(make_app("Tree", 3), path, paths=[str(tmp_path)])
    app, header = persist.load(path)
    assert header.name == "Tree" and header.path == (str(tmp_path),)
    assert [child.name for child in app] == ["child0", "child1", "child2"]
    assert all(child.parent is app for child in app)
    assert app.getServiceNamed("child1") is app.services[1]
    assert not app.running and not any(child.running for child in app)


@pytest.mark.parametrize("damage", ["truncate", "flip", "plain", "newer", "mode"])
def test_damaged_or_unsafe_file_is_refused_before_unpickling(tmp_path, damage):
    marker = tmp_path / "unpickled"
    path = tmp_path / "a.tap"
    data = b"".join(persist.encode(pickle.dumps(Marker(str(marker)))))
    if damage == "truncate":
        data = data[:-3]
    elif damage == "flip":
        data = data[:-5] + bytes([data[-5] ^ 0x20]) + data[-4:]
    elif damage == "plain":
        data = pickle.dumps(Marker(str(marker)))
    elif damage == "newer":
        data = data.replace(b"TWISTDLITE-TAP 1", b"TWISTDLITE-TAP 2", 1)
    path.write_bytes(data)
    path.chmod(0o666 if damage == "mode" else 0o600)
    with pytest.raises(LoadError):
        persist.load(str(path))
    assert not marker.exists()


def test_the_marker_does_detect_unpickling(tmp_path):
    """The control for the test above: an intact file with the same payload is unpickled."""
    marker = tmp_path / "unpickled"
    path = tmp_path / "a.tap"
    path.write_bytes(b"".join(persist.encode(pickle.dumps(Marker(str(marker))))))
    path.chmod(0o600)
    handle, _ = persist.load(str(path))
    handle.close()
    assert marker.exists()


def test_load_tap_refuses_what_is_not_an_application(tmp_path):
    path = tmp_path / "a.tap"
    path.write_bytes(b"".join(persist.encode(pickle.dumps({"not": "a service"}))))
    path.chmod(0o600)
    with pytest.raises(LoadError, match="'application' in .*a.tap is a dict, not a twistdlite service"):
        loader.load_tap(str(path), Options())


@pytest.mark.parametrize("mode, who", [(0o620, "its group"), (0o602, "others"), (0o666, "group and others")])
def test_writable_by_others_is_refused_unless_allowed(tmp_path, mode, who):
    path = tmp_path / "a.tap"
    persist.save(make_app(), str(path))
    path.chmod(mode)
    with pytest.raises(LoadError) as info:
        persist.load(str(path))
    assert str(info.value) == (f"{path} is writable by {who} (mode {mode:04o}), so anyone could have put code "
                               f"in it; refusing to load it (chmod go-w {path}, or pass --allow-unsafe-tap "
                               "if that is intended)")
    app, _ = persist.load(str(path), allow_unsafe=True)
    assert app.name == "App"


def _stat(uid: int, mode: int = 0o100600) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, 0, 10, 0, 0, 0))


@pytest.mark.parametrize("me", [1000, 0])
def test_file_safety_trusts_root_and_me_only(monkeypatch, me):
    monkeypatch.setattr(os, "geteuid", lambda: me)
    persist.check_file_safety(_stat(0), "a.tap")
    persist.check_file_safety(_stat(me), "a.tap")
    other = 4242
    expected = (r"a.tap is owned by .*uid 4242.*, not by you .*uid 1000.* or root; refusing" if me else
                r"a.tap is owned by .*uid 4242.*, and loading it as root would let that user run code as root")
    with pytest.raises(LoadError, match=expected):
        persist.check_file_safety(_stat(other), "a.tap")
    persist.check_file_safety(_stat(other, 0o100666), "a.tap", allow_unsafe=True)


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_file_owned_by_another_user_is_refused(tmp_path):
    path = tmp_path / "a.tap"
    persist.save(make_app(), str(path))
    os.chown(path, 65534, 65534)
    with pytest.raises(LoadError) as info:
        persist.load(str(path))
    assert str(info.value) == (
        f"{path} is owned by nobody (uid 65534), and loading it as root would let that user run code as "
        f"root (a .tap is a pickle); if it is the shutdown .tap of a run with -u, check it and chown root "
        f"{path}, or pass --allow-unsafe-tap if that is intended")
    assert persist.load(str(path), allow_unsafe=True)[0].name == "App"


def test_missing_directory_dangling_link_and_fifo(tmp_path):
    with pytest.raises(LoadError, match="Application file .*nothing.tap' does not exist"):
        loader.load_tap(str(tmp_path / "nothing.tap"), Options())
    with pytest.raises(LoadError, match="is a directory, not a file"):
        loader.load_tap(str(tmp_path), Options())
    (tmp_path / "dangling.tap").symlink_to(tmp_path / "gone")
    with pytest.raises(LoadError, match="dangling.tap' is a symbolic link; .tap files are never read through one"):
        loader.load_tap(str(tmp_path / "dangling.tap"), Options())
    os.mkfifo(tmp_path / "fifo.tap", 0o600)
    with pytest.raises(LoadError, match="is not a regular file"):
        loader.load_tap(str(tmp_path / "fifo.tap"), Options())


def test_a_symlink_to_an_intact_tap_is_not_followed(tmp_path):
    persist.save(make_app(), str(tmp_path / "real.tap"))
    (tmp_path / "link.tap").symlink_to("real.tap")
    with pytest.raises(LoadError) as info:
        persist.load(str(tmp_path / "link.tap"), allow_unsafe=True)
    assert str(info.value) == (f"Application file '{tmp_path / 'link.tap'}' is a symbolic link; .tap files are "
                               f"never read through one (give the path of the file itself: {tmp_path / 'real.tap'})")
    assert persist.load(str(tmp_path / "real.tap"))[0].name == "App"


def test_modules_beside_the_tac_import_again_from_the_header_path(tmp_path, monkeypatch):
    moddir = tmp_path / "app"
    moddir.mkdir()
    (moddir / "tapmod_beside.py").write_text(
        "from twistdlite import service\nclass Held(service.Service):\n    value = 0\n")
    monkeypatch.syspath_prepend(str(moddir))
    import tapmod_beside

    app = service.Application("Beside")
    held = tapmod_beside.Held()
    held.value = 42
    held.setServiceParent(app)
    path = str(tmp_path / "a.tap")
    persist.save(app, path, paths=[str(moddir)])
    monkeypatch.delitem(sys.modules, "tapmod_beside")
    sys.path.remove(str(moddir))
    loaded, _ = persist.load(path)
    assert loaded.services[0].value == 42
    assert str(moddir) in sys.path
    sys.modules.pop("tapmod_beside", None)


def test_missing_module_names_it_and_where_it_was(tmp_path, monkeypatch):
    moddir = tmp_path / "app"
    moddir.mkdir()
    (moddir / "tapmod_gone.py").write_text("from twistdlite import service\nclass Held(service.Service):\n    pass\n")
    monkeypatch.syspath_prepend(str(moddir))
    import tapmod_gone

    app = service.Application("Gone")
    tapmod_gone.Held().setServiceParent(app)
    path = str(tmp_path / "a.tap")
    persist.save(app, path, paths=[str(moddir)])
    monkeypatch.delitem(sys.modules, "tapmod_gone")
    sys.path.remove(str(moddir))
    (moddir / "tapmod_gone.py").unlink()
    with pytest.raises(LoadError) as info:
        persist.load(path)
    assert str(info.value) == f"cannot load {path}: no module named 'tapmod_gone' (its modules were imported from {moddir})"


# -- the shutdown save and keys -----------------------------------------------------------

def key_file(tmp_path, name="key", secret=b"s" * 32):
    path = tmp_path / name
    path.write_bytes(secret + b"\n")
    path.chmod(0o600)
    return str(path)


def test_save_shutdown_tap_logs_and_writes_name_shutdown_tap(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="twistdlite")
    app = make_app("Counter")
    assert persist.save_shutdown_tap(app, Options()) == "Counter-shutdown.tap"
    assert "Saving Counter application to Counter-shutdown.tap..." in caplog.messages
    assert "Saved." in caplog.messages
    assert persist.load("Counter-shutdown.tap")[0].name == "Counter"


def test_key_is_read_at_start_not_at_shutdown(tmp_path, monkeypatch):
    """prepare_save reads --tap-key early, so a chdir, chroot or privilege drop cannot lose it."""
    key = key_file(tmp_path)
    options = Options(tap_key=key)
    app = make_app("Signed")
    persist.prepare_save(app, options)
    os.unlink(key)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    persist.save_shutdown_tap(app, options)
    data = (run / "Signed-shutdown.tap").read_bytes()
    assert b'"digest":"hmac-sha256"' in data
    persist.decode(data, persist.TapKey(b"s" * 32, "k"))


def test_load_tap_with_key_and_next_save_is_signed_with_it(tmp_path, monkeypatch):
    key = key_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    persist.save(make_app("Signed"), "in.tap", persist.read_key(key))
    options = Options(file="in.tap", tap_key=key)
    app = loader.load_tap("in.tap", options)
    assert persist.save_shutdown_tap(app, options) == "Signed-shutdown.tap"
    persist.decode((tmp_path / "Signed-shutdown.tap").read_bytes(), persist.read_key(key))
    with pytest.raises(LoadError, match="is signed with a key"):
        loader.load_tap("Signed-shutdown.tap", Options())
    other = key_file(tmp_path, "other", b"o" * 32)
    with pytest.raises(LoadError, match="was not signed with the key in"):
        loader.load_tap("Signed-shutdown.tap", Options(tap_key=other))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_file_others_can_read_or_write_is_refused(tmp_path, mode):
    key = key_file(tmp_path)
    os.chmod(key, mode)
    with pytest.raises(LaunchError) as info:
        persist.read_key(key)
    assert str(info.value) == (f"tap key file {key!r} is open to its group or others (mode {mode:04o}): "
                               f"whoever reads it can sign a .tap; chmod 600 {key}")
    os.chmod(key, 0o400)
    assert persist.read_key(key).secret == b"s" * 32


def test_restarted_app_remembers_its_import_path_for_the_next_save(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    persist.save(make_app("Again"), "first.tap", paths=["/srv/app"])
    app = loader.load_tap("first.tap", Options(file="first.tap"))
    persist.save_shutdown_tap(app, Options())
    header, _ = persist.decode((tmp_path / "Again-shutdown.tap").read_bytes())
    assert header.path == ("/srv/app",) and header.name == "Again"


# -- temporary files a killed save left behind ------------------------------------------------

def dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_save_names_its_temporary_file_with_its_pid(tmp_path, monkeypatch):
    seen = []

    def spy(fd, chunks):
        seen.extend(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
        os.write(fd, b"".join(chunks))

    monkeypatch.setattr(persist, "_write_all", spy)
    persist.save(make_app(), str(tmp_path / "App-shutdown.tap"))
    assert len(seen) == 1 and seen[0].startswith(f".App-shutdown.tap.{os.getpid()}-") and seen[0].endswith(".tmp")


def test_the_next_save_removes_only_the_temporary_files_it_can_prove_are_stale(tmp_path, caplog):
    path = tmp_path / "App-shutdown.tap"
    gone = dead_pid()
    stale = tmp_path / f".App-shutdown.tap.{gone}-abc_12XY.tmp"
    stale.write_bytes(b"half a save")
    kept = {
        f".App-shutdown.tap.{os.getppid()}-abcd1234.tmp": "a live process's save in progress",
        f".App-shutdown.tap.{os.getpid()}-abcd1234.tmp": "this process's own",
        f".Other-shutdown.tap.{gone}-abcd1234.tmp": "another application's",
        ".App-shutdown.tap.abcd1234.tmp": "no PID: cannot be proved stale",
        f".App-shutdown.tap.{gone}-abcd1234.tmp.bak": "not a temporary file's name",
        f"App-shutdown.tap.{gone}-abcd1234.tmp": "not hidden: not ours",
    }
    for name in kept:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / f".App-shutdown.tap.{gone}-link.tmp").symlink_to(tmp_path / "elsewhere")
    (tmp_path / f".App-shutdown.tap.{gone}-dir.tmp").mkdir()
    with caplog.at_level(logging.INFO, logger="twistdlite"):
        persist.save(make_app(), str(path))
    assert not stale.exists()
    assert f"Removed {stale}, left by a save that was interrupted (PID {gone} is gone)." in caplog.text
    for name, why in kept.items():
        assert (tmp_path / name).read_bytes() == b"keep", why
    assert (tmp_path / f".App-shutdown.tap.{gone}-link.tmp").is_symlink()
    assert (tmp_path / f".App-shutdown.tap.{gone}-dir.tmp").is_dir()
    persist.load(str(path))


def test_a_stale_temporary_file_of_a_zombie_is_removed(tmp_path):
    """A save killed with SIGKILL where nobody reaps the dead process (PID 1 on this machine does not):
    its PID still answers kill(0) as a zombie, yet no save is in progress."""
    import subprocess

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until(lambda: open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
                   what="a zombie")
        stale = tmp_path / f".App-shutdown.tap.{zombie.pid}-abcd1234.tmp"
        stale.write_bytes(b"half a save")
        assert persist.remove_stale_temp_files(str(tmp_path / "App-shutdown.tap")) == [str(stale)]
        assert not stale.exists()
    finally:
        zombie.wait()


@pytest.mark.skipif(not ROOT, reason="needs root to make a file another user owns")
def test_another_users_stale_temporary_file_is_left_alone(tmp_path):
    gone = dead_pid()
    theirs = tmp_path / f".App-shutdown.tap.{gone}-abcd1234.tmp"
    theirs.write_bytes(b"theirs")
    os.chown(theirs, 65534, 65534)
    assert persist.remove_stale_temp_files(str(tmp_path / "App-shutdown.tap")) == []
    assert theirs.read_bytes() == b"theirs"


def test_the_save_says_what_its_digest_proves(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="twistdlite"):
        persist.save_shutdown_tap(make_app(), Options())
    said = caplog.messages[-1]
    assert "SHA-256 digest, which detects damage, not forgery" in said and "--tap-key" in said
    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="twistdlite"):
        persist.save_shutdown_tap(make_app(), Options(tap_key=str(key)))
    assert caplog.messages[-1] == f"App-shutdown.tap is signed with the key in {key} (HMAC-SHA256)."
