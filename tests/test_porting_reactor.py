"""The rest of the reactor a service touches (in-process): the thread pool, system event triggers, child processes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading

import pytest

from netsupport import until
from twistdlite import _events, reactor, threads
from twistdlite.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twistdlite.protocol import ProcessProtocol
from twistdlite.threadpool import ThreadPool


@pytest.fixture(autouse=True)
def clean_reactor(monkeypatch):
    """No loop installed, no pool, no triggers left between tests; not under the launcher."""
    monkeypatch.setattr(reactor, "_launcher", False)
    reactor.uninstall()
    _events._triggers.clear()
    yield
    reactor._stop_thread_pool()
    reactor.uninstall()
    _events._triggers.clear()


def run_installed(main, timeout: float = 10.0):
    """Run ``main()`` on a fresh loop installed as the reactor's."""
    loop = asyncio.new_event_loop()
    try:
        reactor.install(loop)
        return loop.run_until_complete(asyncio.wait_for(main(), timeout))
    finally:
        reactor.uninstall()
        loop.close()


# -- the thread pool -------------------------------------------------------------------


def test_call_in_thread_runs_off_the_loop_thread_and_call_from_thread_comes_back():
    seen = {}

    async def main():
        done = asyncio.Event()

        def work(x):
            seen["worker"] = threading.current_thread().name
            reactor.callFromThread(back, x * 2)

        def back(y):
            seen["back"] = (threading.current_thread() is threading.main_thread(), y)
            done.set()

        reactor.callInThread(work, 21)
        await done.wait()

    run_installed(main)
    assert seen["worker"].startswith("PoolThread-reactor-")
    assert seen["back"] == (True, 42)


def test_defer_to_thread_runs_in_a_pool_thread_and_fires_in_the_loops_thread_with_the_result_or_failure():
    seen, fired = [], []

    def work(x):
        seen.append(threading.current_thread().name)
        if x is None:
            raise KeyError("no x")
        return x * 2

    def note(result):
        fired.append(threading.current_thread() is threading.main_thread())
        return result

    async def main():
        good = threads.deferToThread(work, 21).addBoth(note)
        bad = threads.deferToThread(work, None).addBoth(note)
        assert not good.called  # the result comes back later, through the loop
        result = await good
        with pytest.raises(KeyError, match="no x"):
            await bad
        return result

    assert run_installed(main) == 42
    assert [name.startswith("PoolThread-reactor-") for name in seen] == [True, True]
    assert fired == [True, True]


def test_the_pool_is_bounded_by_suggest_thread_pool_size():
    reactor.suggestThreadPoolSize(3)
    pool = reactor.getThreadPool()
    gate = threading.Event()
    running = []
    lock = threading.Lock()

    def hold():
        with lock:
            running.append(threading.current_thread().name)
        gate.wait(5)

    for _ in range(8):
        reactor.callInThread(hold)
    try:
        deadline = threading.Event()
        for _ in range(200):
            if len(running) == 3:
                break
            deadline.wait(0.01)
        assert len(running) == 3 and pool.workers == 3
        assert len(set(running)) == 3
    finally:
        gate.set()
    for _ in range(500):
        if len(running) == 8:
            break
        threading.Event().wait(0.01)
    assert len(running) == 8 and pool.max == 3


def test_a_pool_call_that_raises_is_logged_and_the_pool_goes_on(caplog):
    pool = ThreadPool(1, 1, "t")
    pool.start()
    done = threading.Event()
    try:
        with caplog.at_level(logging.ERROR):
            pool.callInThread(lambda: 1 / 0)
            pool.callInThread(done.set)
            assert done.wait(5)
    finally:
        pool.stop(timeout=5)
    errors = [r for r in caplog.records if "thread pool call" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info[0] is ZeroDivisionError
    assert "<lambda>" in errors[0].getMessage()


def test_call_in_thread_with_callback_reports_success_and_failure():
    pool = ThreadPool(0, 2)
    outcomes = []
    done = threading.Semaphore(0)

    def on_result(success, result):
        outcomes.append((success, result if success else result.value.__class__))
        done.release()

    pool.callInThreadWithCallback(on_result, lambda: "ok")  # queued until start
    pool.start()
    pool.callInThreadWithCallback(on_result, int, "x")
    assert done.acquire(timeout=5) and done.acquire(timeout=5)
    pool.stop(timeout=5)
    assert sorted(outcomes, key=str) == sorted([(True, "ok"), (False, ValueError)], key=str)
    assert pool.workers == 0
    with pytest.raises(RuntimeError):
        pool.callInThread(print)
    with pytest.raises(ValueError):
        ThreadPool(3, 2)


def test_block_calling_from_a_thread_waits_for_the_loops_answer_and_raises_its_error():
    async def later(value):
        await asyncio.sleep(0.01)
        return value

    def in_thread():
        first = threads.blockingCallFromThread(reactor, lambda: "plain")
        second = threads.blockingCallFromThread(reactor, later, "awaited")
        try:
            threads.blockingCallFromThread(reactor, int, "nope")
        except ValueError as exc:
            third = f"raised {exc.__class__.__name__}"
        return first, second, third

    async def main():
        done = asyncio.get_running_loop().create_future()
        reactor.callInThread(lambda: reactor.callFromThread(done.set_result, in_thread()))
        result = await done
        with pytest.raises(RuntimeError, match="own thread"):
            threads.blockingCallFromThread(reactor, print)
        return result

    assert run_installed(main) == ("plain", "awaited", "raised ValueError")


def test_call_multiple_in_thread_runs_the_calls_in_order_in_one_thread():
    seen = []

    async def main():
        done = asyncio.Event()
        threads.callMultipleInThread([
            (seen.append, (threading.current_thread().name,), {}),
            (lambda: seen.append(threading.current_thread().name), (), {}),
            (reactor.callFromThread, (done.set,), {}),
        ])
        await done.wait()

    run_installed(main)
    assert seen[0] == "MainThread" and seen[1].startswith("PoolThread-")


# -- system event triggers -------------------------------------------------------------


def test_triggers_run_before_during_after_in_order_added_and_removed_ones_do_not():
    calls = []
    reactor.addSystemEventTrigger("after", "custom", calls.append, "after")
    reactor.addSystemEventTrigger("during", "custom", calls.append, "during")
    reactor.addSystemEventTrigger("before", "custom", calls.append, "before-1")
    gone = reactor.addSystemEventTrigger("before", "custom", calls.append, "removed")
    reactor.addSystemEventTrigger("before", "custom", calls.append, "before-2")
    reactor.removeSystemEventTrigger(gone)
    with pytest.raises(ValueError):
        reactor.removeSystemEventTrigger(gone)
    with pytest.raises(KeyError):
        reactor.addSystemEventTrigger("sometime", "custom", print)
    reactor.fireSystemEvent("custom")
    assert calls == ["before-1", "before-2", "during", "after"]
    reactor.fireSystemEvent("custom")  # each trigger runs once
    assert len(calls) == 4


def test_the_during_phase_waits_for_awaitables_returned_before(caplog):
    calls = []

    async def main():
        gate = asyncio.get_running_loop().create_future()

        def before():
            calls.append("before")
            return gate

        def broken():
            raise RuntimeError("trigger broke")

        reactor.addSystemEventTrigger("before", "shutdown", before)
        reactor.addSystemEventTrigger("before", "shutdown", broken)
        reactor.addSystemEventTrigger("during", "shutdown", calls.append, "during")
        reactor.fireSystemEvent("shutdown")
        await asyncio.sleep(0.01)
        assert calls == ["before"]
        gate.set_result(None)
        await until(lambda: "during" in calls)

    with caplog.at_level(logging.ERROR):
        run_installed(main)
    assert calls == ["before", "during"]
    assert any("trigger broke" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


# -- processes -------------------------------------------------------------------------


class Recording(ProcessProtocol):
    """Records what a child process does."""

    def __init__(self):
        self.events = []
        self.out = b""
        self.err = b""
        self.ended = None

    def connectionMade(self):
        self.events.append(("made", self.transport.pid))

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        self.err += data

    def processExited(self, reason):
        self.events.append(("exited", reason.type))

    def processEnded(self, reason):
        self.events.append(("ended", reason.type))
        self.ended = reason


PY = sys.executable


def test_a_child_gets_stdin_and_its_stdout_stderr_and_exit_reach_the_protocol(tmp_path):
    proto = Recording()
    script = "import sys; data = sys.stdin.read(); sys.stdout.write(data.upper()); sys.stderr.write('e'); sys.exit(3)"

    async def main():
        transport = reactor.spawnProcess(proto, PY, [PY, "-c", script], env={"X": "1"}, path=str(tmp_path))
        assert transport.pid and proto.events == [("made", transport.pid)]
        transport.write(b"hello ")
        transport.writeSequence([b"world"])
        transport.closeStdin()
        await until(lambda: proto.ended is not None)

    run_installed(main)
    assert proto.out == b"HELLO WORLD" and proto.err == b"e"
    assert [name for name, _ in proto.events] == ["made", "exited", "ended"]
    assert proto.ended.check(ProcessTerminated) and proto.ended.value.exitCode == 3
    assert proto.ended.value.status == 3 << 8


def test_a_clean_exit_is_process_done_and_env_and_path_are_the_childs(tmp_path):
    proto = Recording()

    async def main():
        reactor.spawnProcess(proto, PY, [PY, "-c", "import os; print(os.getcwd(), sorted(os.environ))"],
                             env={"ONLY": "me"}, path=str(tmp_path))
        await until(lambda: proto.ended is not None)

    run_installed(main)
    assert proto.ended.check(ProcessDone) and proto.ended.value.exitCode == 0
    cwd, names = proto.out.decode().split(" ", 1)
    assert os.path.realpath(cwd) == os.path.realpath(str(tmp_path)) and "ONLY" in names and "PATH" not in names


def test_env_none_passes_this_processs_environment_and_no_env_an_empty_one(monkeypatch):
    """As Twisted documents for POSIX: env not given is an empty environment, env=None is os.environ."""
    monkeypatch.setenv("SPAWN_MARK", "inherited")
    script = "import os; print(os.environ.get('SPAWN_MARK'), len(os.environ))"
    with_none, without = Recording(), Recording()

    async def main():
        reactor.spawnProcess(with_none, PY, [PY, "-c", script], env=None)
        reactor.spawnProcess(without, PY, [PY, "-c", script])
        await until(lambda: with_none.ended is not None and without.ended is not None)

    run_installed(main)
    assert with_none.out.split()[0] == b"inherited"
    assert without.out.split()[0] == b"None"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a child's user needs root")
def test_uid_and_gid_run_the_child_as_that_user_with_only_its_groups():
    """As Twisted's switchUID: the child gets the uid, the gid, and the user's own groups (initgroups),
    not the parent's (root's) supplementary groups."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    proto = Recording()

    async def main():
        reactor.spawnProcess(proto, "/bin/sh", ["sh", "-c", "id -u; id -g; id -G"], env={"PATH": "/usr/bin:/bin"},
                             path="/", uid=nobody.pw_uid, gid=nobody.pw_gid)
        await until(lambda: proto.ended is not None)

    before = os.getgroups()
    os.setgroups([*before, 4242])  # a supplementary group of this (root) process the child must not keep
    try:
        run_installed(main)
    finally:
        os.setgroups(before)
    assert proto.ended.check(ProcessDone), proto.err
    uid, gid, groups = proto.out.decode().splitlines()
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert sorted(map(int, groups.split())) == sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))


def test_signal_process_ends_it_with_the_signal_and_then_it_has_exited_already():
    proto = Recording()

    async def main():
        transport = reactor.spawnProcess(proto, PY, [PY, "-c", "import time; print('up', flush=True); time.sleep(60)"])
        await until(lambda: b"up" in proto.out)
        transport.signalProcess("TERM")
        await until(lambda: proto.ended is not None)
        with pytest.raises(ProcessExitedAlready):
            transport.signalProcess("KILL")

    run_installed(main)
    assert proto.ended.check(ProcessTerminated) and proto.ended.value.signal == 15


def test_lose_connection_closes_the_pipes():
    proto = Recording()

    async def main():
        transport = reactor.spawnProcess(proto, PY, [PY, "-c", "import sys; sys.stdin.read()"])
        transport.loseConnection()
        await until(lambda: proto.ended is not None)

    run_installed(main)
    assert proto.ended.check(ProcessDone)


def test_a_missing_executable_reaches_process_ended_and_nothing_is_raised(caplog):
    proto = Recording()

    async def main():
        transport = reactor.spawnProcess(proto, "/no/such/program", ["prog"])
        await until(lambda: proto.ended is not None)
        return transport

    with caplog.at_level(logging.ERROR):
        transport = run_installed(main)
    assert transport.pid is None
    assert [name for name, _ in proto.events] == ["made", "exited", "ended"]
    assert proto.ended.check(ProcessTerminated) and proto.ended.value.exitCode == 1
    assert "cannot run /no/such/program: No such file or directory" in str(proto.ended.value)
    assert any("cannot run /no/such/program" in r.getMessage() for r in caplog.records)


def test_pty_and_extra_child_fds_are_refused_clearly():
    with pytest.raises(NotImplementedError, match="usePTY"):
        reactor.spawnProcess(Recording(), PY, [PY], usePTY=True)
    with pytest.raises(NotImplementedError, match="descriptors 0, 1 and 2"):
        reactor.spawnProcess(Recording(), PY, [PY], childFDs={0: "w", 1: "r", 2: "r", 3: "r"})


def test_reactor_run_is_a_warning_under_the_launcher(caplog, monkeypatch):
    monkeypatch.setattr(reactor, "_launcher", True)
    with caplog.at_level(logging.WARNING):
        reactor.run()
    assert "reactor.run() ignored" in caplog.text


def test_reactor_run_in_a_plain_script_runs_until_stop_with_startup_and_shutdown_triggers():
    calls = []
    reactor.addSystemEventTrigger("after", "startup", calls.append, "started")
    reactor.addSystemEventTrigger("before", "shutdown", calls.append, "stopping")
    reactor.callWhenRunning(reactor.callLater, 0.01, reactor.stop)
    reactor.run()
    assert calls == ["started", "stopping"] and not reactor.running
