"""twistdlite.reactor: callLater and its handle, callWhenRunning, stop, running, and the reactor choice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import subprocess
import sys
import threading

import pytest

from support import ROOT, env, run
from twistdlite import reactor
from twistdlite.error import ReactorNotRunning
from twistdlite.reactor import AlreadyCalled, AlreadyCancelled

TACS = ROOT / "tests" / "tacs"


@pytest.fixture(autouse=True)
def clean_reactor():
    """Each test starts and ends with no loop installed and nothing queued."""
    reactor.uninstall()
    reactor._pending_calls.clear()
    reactor._when_running.clear()
    yield
    reactor.uninstall()
    reactor._pending_calls.clear()
    reactor._when_running.clear()


def run_installed(main, stop_hook=None):
    """Install a fresh loop as the reactor's, run ``main()`` on it, tear it down."""
    loop = asyncio.new_event_loop()
    try:
        reactor.install(loop, stop_hook=stop_hook)
        return loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        reactor.uninstall()
        loop.close()


async def until(condition, timeout: float = 5.0) -> None:
    """Yield to the loop until ``condition()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


@contextlib.contextmanager
def frozen_clock():
    """Stop the running loop's clock while the block runs (yields the time it shows): calls scheduled
    in the block are placed from one instant, however long the process is descheduled between them."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    loop.time = lambda: now
    try:
        yield now
    finally:
        del loop.time


# -- callLater and its handle -----------------------------------------------------------------------

def test_call_later_runs_with_arguments_and_the_handle_tracks_it():
    seen: list = []

    async def main() -> None:
        before = reactor.seconds()
        call = reactor.callLater(0.01, lambda *a, **kw: seen.append((a, kw)), 1, 2, key="v")
        after = reactor.seconds()
        assert call.active() and not call.called
        assert before + 0.01 <= call.getTime() <= after + 0.01
        await until(lambda: seen)
        assert not call.active() and call.called
        with pytest.raises(AlreadyCalled):
            call.cancel()
        with pytest.raises(AlreadyCalled):
            call.reset(1)
        with pytest.raises(AlreadyCalled):
            call.delay(1)

    run_installed(main)
    assert seen == [((1, 2), {"key": "v"})]


def test_cancel_unschedules_and_cannot_be_repeated():
    seen: list = []

    async def main() -> None:
        call = reactor.callLater(0, seen.append, "cancelled")
        call.cancel()
        assert not call.active() and call.cancelled
        for action in (call.cancel, lambda: call.reset(0), lambda: call.delay(0)):
            with pytest.raises(AlreadyCancelled):
                action()
        marker = reactor.callLater(0.02, seen.append, "marker")
        await until(lambda: seen)
        assert not marker.active()

    run_installed(main)
    assert seen == ["marker"]


def test_reset_and_delay_move_the_call():
    order: list = []

    async def main() -> None:
        with frozen_clock() as now:
            a = reactor.callLater(0.01, order.append, "a")
            b = reactor.callLater(0.02, order.append, "b")
            c = reactor.callLater(5, order.append, "c")
            before = a.getTime()
            a.delay(0.05)
            assert a.getTime() == pytest.approx(before + 0.05)
            c.reset(0)
            assert c.getTime() == now
            assert (c.getTime(), b.getTime(), a.getTime()) == pytest.approx((now, now + 0.02, now + 0.06))
        await until(lambda: len(order) == 3)

    run_installed(main)
    assert order == ["c", "b", "a"]


def test_calls_made_before_the_loop_exists_are_queued_until_install():
    seen: list = []
    early = reactor.callLater(0, seen.append, "early")
    cancelled = reactor.callLater(0, seen.append, "cancelled")
    cancelled.cancel()
    reactor.callWhenRunning(seen.append, "when running")
    assert seen == [] and early.active()

    async def main() -> None:
        await until(lambda: len(seen) >= 2)
        await asyncio.sleep(0.01)

    run_installed(main)
    assert seen == ["when running", "early"]


def test_an_exception_in_a_delayed_call_is_logged_and_the_loop_goes_on(caplog):
    seen: list = []

    def boom() -> None:
        raise ValueError("boom in callLater")

    async def main() -> None:
        reactor.callLater(0, boom)
        reactor.callLater(0.01, seen.append, "after")
        await until(lambda: seen)

    run_installed(main)
    assert "boom in callLater" in caplog.text
    assert any(record.exc_info for record in caplog.records)


def test_seconds_is_the_loop_clock():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = loop.time()
        now = reactor.seconds()
        assert before <= now <= loop.time()
        with frozen_clock() as frozen:
            assert reactor.seconds() == frozen

    run_installed(main)


# -- callWhenRunning, running, stop ------------------------------------------------------------------

def test_call_when_running_after_the_loop_runs_runs_soon():
    seen: list = []

    async def main() -> None:
        assert reactor.running
        reactor.callWhenRunning(seen.append, "now")
        assert seen == []  # soon, not re-entrantly
        await until(lambda: seen)

    run_installed(main)
    assert seen == ["now"]
    assert not reactor.running


def test_call_when_running_between_install_and_run_is_not_lost():
    seen: list = []
    loop = asyncio.new_event_loop()
    try:
        reactor.install(loop)
        reactor.callWhenRunning(seen.append, "installed, not yet running")
        reactor.callLater(0, seen.append, "later")
        loop.run_until_complete(asyncio.sleep(0.02))
    finally:
        reactor.uninstall()
        loop.close()
    assert seen == ["installed, not yet running", "later"]


def test_the_running_loop_serves_when_none_is_installed():
    seen: list = []

    async def main() -> None:
        assert reactor.running
        reactor.callWhenRunning(seen.append, "when running")
        reactor.callLater(0.001, seen.append, "later")
        await until(lambda: len(seen) == 2)
        assert reactor.getLoop() is asyncio.get_running_loop()

    asyncio.run(main())
    assert seen == ["when running", "later"]
    assert reactor._pending_calls == [] and reactor._when_running == []


def test_running_is_false_without_a_loop_and_stop_says_so():
    assert reactor.running is False
    with pytest.raises(ReactorNotRunning):
        reactor.stop()
    with pytest.raises(ReactorNotRunning):
        reactor.getLoop()


def test_stop_calls_the_runners_hook():
    stops: list = []

    async def main() -> None:
        reactor.stop()

    run_installed(main, stop_hook=lambda: stops.append("graceful"))
    assert stops == ["graceful"]


def test_stop_without_a_hook_stops_the_installed_loop():
    loop = asyncio.new_event_loop()
    try:
        reactor.install(loop)
        reactor.callLater(0.01, reactor.stop)
        watchdog = loop.call_later(10, loop.stop)
        loop.run_forever()  # returns only because reactor.stop() stopped it
        assert watchdog.when() > loop.time()
        watchdog.cancel()
    finally:
        reactor.uninstall()
        loop.close()


def test_call_from_thread_runs_in_the_loop_thread():
    seen: list = []

    async def main() -> None:
        worker = threading.Thread(target=reactor.callFromThread, args=(lambda: seen.append(threading.get_ident()),))
        worker.start()
        worker.join(5)
        await until(lambda: seen)
        assert seen == [threading.get_ident()]

    run_installed(main)


# -- the reactor choice, end to end -------------------------------------------------------------------

@pytest.mark.parametrize("name, loop_class", [("asyncio", r"asyncio\.\w+\._\w*EventLoop"), ("uvloop", r"uvloop\.Loop")])
def test_a_tac_using_the_reactor_api_runs_on_the_chosen_loop(tmp_path, name, loop_class):
    if name == "uvloop":
        pytest.importorskip("uvloop")
    args = ["-noy", str(TACS / "spine_selfstop.tac"), "--pidfile", ""]
    if name != "asyncio":
        args[:0] = ["-r", name]
    result = run(args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "loaded, running=False" in out
    assert f"reactor class: {name}." in out
    assert re.search(r"hello\? loop=" + loop_class + " running=True", out), out
    waited = float(re.search(r"later after (\d+\.\d+) s", out).group(1))
    assert 0.005 <= waited < 5, waited  # callLater(0.01) ran, and not at once
    assert "Server Shut Down." in out
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []  # no pidfile, no .tap (-o)


def test_asyncio_is_the_default_reactor_and_uvloop_is_not_imported(tmp_path):
    script = (
        "import sys\n"
        "from twistdlite.launch.cli import run_cli\n"
        f"code = run_cli(['-noy', {str(TACS / 'spine_selfstop.tac')!r}, '--pidfile', ''])\n"
        "assert code == 0, code\n"
        "assert 'uvloop' not in sys.modules, 'the default reactor imported uvloop'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env(), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reactor class: asyncio." in result.stdout


def test_help_reactors_lists_both():
    result = run(["--help-reactors"])
    assert result.returncode == 0 and result.stderr == ""
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert names == ["asyncio", "uvloop"]
    assert "[not installed]" not in result.stdout  # uvloop is a test dependency


def test_help_reactors_marks_a_missing_uvloop(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", HIDE_UVLOOP + "main(['--help-reactors'])"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    line = [line for line in result.stdout.splitlines() if "uvloop" in line.split()[:1]][0]
    assert line.endswith("[not installed]")


#: The start of a launcher for which uvloop is not installed (find_spec and import both fail).
HIDE_UVLOOP = "import sys; sys.modules['uvloop'] = None\nfrom twistdlite.launch.cli import main\n"


def test_uvloop_asked_for_but_not_installed(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", HIDE_UVLOOP + "main()", "-r", "uvloop", "-noy", str(TACS / "spine_selfstop.tac")],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr == "twistdlite: error: reactor 'uvloop' is not installed: pip install 'twistdlite[uvloop]'\n"
    assert "loaded" not in result.stdout  # refused before the .tac ran
    assert list(tmp_path.iterdir()) == []


def test_check_reactor_in_process(monkeypatch):
    import importlib.util

    from twistdlite.launch import runner
    from twistdlite.launch.errors import LaunchError

    runner.check_reactor("asyncio")
    with pytest.raises(LaunchError, match="unknown reactor 'twisted'.*asyncio, uvloop"):
        runner.check_reactor("twisted")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvloop" else real_find_spec(name, *a))
    with pytest.raises(LaunchError, match="not installed"):
        runner.check_reactor("uvloop")
