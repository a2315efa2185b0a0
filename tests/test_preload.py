"""preload: what a confined run (--chroot, -u/-g) imports before it is confined, and only then."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import ROOT, env
from twistdlite.launch import preload
from twistdlite.launch.errors import LaunchError
from twistdlite.launch.options import Options


def test_nothing_is_imported_when_the_run_is_not_confined():
    assert not preload.needed(Options())
    assert preload.preload(Options()) == []


@pytest.mark.parametrize("options, ids", [
    (Options(chroot="/jail"), ()), (Options(), (65534, None)), (Options(), (None, 65534))])
def test_a_chroot_or_a_change_of_user_or_group_needs_it(options, ids):
    assert preload.needed(options, *ids)


def test_every_registered_module_imports():
    """A misspelt registration would fail every confined run: each name must import here."""
    everything = Options(chroot="/jail", plugin="web", debug=True, workers=2)
    names = preload.preload(everything)
    assert names == [entry.module for entry in preload.REGISTRY if entry.module != "uvloop"]


def test_what_a_run_needs_follows_its_options():
    plain = preload.modules_for(Options(chroot="/jail", no_save=True))
    assert {"twistdlite._ports", "twistdlite._connectors", "twistdlite._datagram", "twistdlite._unixsock",
            "twistdlite.launch.stacks", "logging.handlers", "encodings.idna"} <= set(plain)
    assert "twistdlite.launch.persist" not in plain and "uvloop" not in plain
    saving = preload.modules_for(Options(chroot="/jail", reactor="uvloop"))
    assert {"twistdlite.launch.persist", "pickle", "hashlib", "hmac", "json", "uvloop"} <= set(saving)


def test_a_module_that_cannot_be_imported_fails_in_one_line(monkeypatch):
    monkeypatch.setattr(preload, "REGISTRY", list(preload.REGISTRY))
    preload.register("twistdlite_no_such_module", why="a test")
    with pytest.raises(LaunchError, match=r"^cannot import twistdlite_no_such_module before confining"):
        preload.preload(Options(chroot="/jail"))
    preload.REGISTRY[-1].optional = True
    assert "twistdlite_no_such_module" not in preload.preload(Options(chroot="/jail"))


def test_register_adds_a_module_once(monkeypatch):
    monkeypatch.setattr(preload, "REGISTRY", list(preload.REGISTRY))
    count = len(preload.REGISTRY)
    preload.register("twistdlite._ports", "colorsys")
    preload.register("colorsys")
    assert len(preload.REGISTRY) == count + 1 and preload.REGISTRY[-1].module == "colorsys"


def test_an_unconfined_start_stays_lazy(tmp_path):
    """Without --chroot or -u, the run does not import the reactor's port modules it does not use."""
    tac = tmp_path / "empty.tac"
    tac.write_text("from twistdlite import service\n"
                   "import atexit, sys\n"
                   "atexit.register(lambda: print('PORTS', 'twistdlite._ports' in sys.modules,"
                   " 'twistdlite.launch.stacks' in sys.modules, flush=True))\n"
                   "application = service.Application('empty')\n"
                   "from twistdlite import reactor\n"
                   "reactor.callWhenRunning(reactor.stop)\n")
    done = subprocess.run([sys.executable, "-m", "twistdlite", "--pidfile", "", "-l", "-", "-noy", str(tac)],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PORTS False" in done.stdout, done.stdout
