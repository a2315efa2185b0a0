"""Steps 5-7 of a run in-process (runner.Serving), the stack helpers and the signal helpers.

Signals are simulated by calling the handler the loop would call; the real
ones are exercised end to end in test_daemon_lifecycle.py and test_daemon_faults.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
import weakref

import pytest

from twistdlite import service
from twistdlite.launch import signals, stacks
from twistdlite.launch.errors import LaunchError, StartError
from twistdlite.launch.options import Options
from twistdlite.launch.runner import Serving


class Readiness:
    def __init__(self):
        self.said = []

    def ready(self):
        self.said.append("ready")

    def failed(self, message):
        self.said.append(("failed", message))

    def close(self):
        pass


class Logs:
    def __init__(self):
        self.calls = []

    def reopen(self):
        self.calls.append("reopen")

    def rotate(self):
        self.calls.append("rotate")


events: list = []


class Step(service.Service):
    def __init__(self, name, start=None, stop=None):
        self.setName(name)
        self.start_kind, self.stop_kind = start, stop

    def startService(self):
        service.Service.startService(self)
        events.append(f"start {self.name}")
        if self.start_kind == "forever":
            return self._forever()
        if self.start_kind == "future":
            return asyncio.get_running_loop().create_future()
        if self.start_kind == "fail later":
            return self._fail_later()
        if self.start_kind == "block":
            time.sleep(30)
        return None

    async def _forever(self):
        await asyncio.Event().wait()

    async def _fail_later(self):
        await asyncio.sleep(0.05)
        raise ValueError("later")

    def stopService(self):
        service.Service.stopService(self)
        events.append(f"stop {self.name}")
        if self.stop_kind == "forever":
            return self._forever()
        return None


def app(*children):
    application = service.Application("app")
    for child in children:
        child.setServiceParent(application)
    events.clear()
    return application


def new_loop(reactor="asyncio"):
    if reactor == "uvloop":
        return pytest.importorskip("uvloop").new_event_loop()
    return asyncio.new_event_loop()


def serve(application, options=Options(no_save=True), during=None, reactor="asyncio"):
    """Run Serving.serve() on a fresh loop; ``during(serving, loop)`` runs once the loop runs."""
    readiness, logs = Readiness(), Logs()
    loop = new_loop(reactor)
    serving = Serving(options, application, readiness, logs, None, None)
    if during is not None:
        loop.call_soon(during, serving, loop)
    try:
        result = loop.run_until_complete(serving.serve())
        return result, readiness, logs
    except LaunchError as exc:
        exc.readiness = readiness
        raise
    finally:
        loop.close()


def stop_when_ready(serving, loop):
    def check():
        if serving.readiness.said:
            serving._on_signal(signal.SIGTERM)
        else:
            loop.call_later(0.01, check)
    check()


def test_start_ready_stop(caplog):
    caplog.set_level(logging.INFO)
    code, readiness, _ = serve(app(Step("a"), Step("b")), during=stop_when_ready)
    assert code == 0 and readiness.said == ["ready"]
    assert events == ["start a", "start b", "stop b", "stop a"]
    assert "Received SIGTERM, shutting down." in caplog.text and "Server Shut Down." in caplog.text


def test_an_awaitable_that_fails_later_is_a_failed_start():
    with pytest.raises(StartError, match="^start failed: ValueError: later$") as info:
        serve(app(Step("a"), Step("b", start="fail later"), Step("c")))
    assert info.value.readiness.said == [("failed", "start failed: ValueError: later")]
    assert events == ["start a", "start b", "stop a"]


@pytest.mark.parametrize("kind", ["forever", "future", "block"])
def test_a_start_that_never_finishes_names_the_service(kind):
    options = Options(no_save=True, start_timeout=0.2)
    with pytest.raises(StartError) as info:
        serve(app(Step("a"), Step("slow", start=kind)), options)
    assert str(info.value) == "start timed out after 0.2 s (still starting <Step 'slow'> (at app/slow))"
    assert events == ["start a", "start slow", "stop a"]


def test_a_stop_that_hangs_names_the_service(caplog):
    options = Options(no_save=True, shutdown_timeout=0.2)
    code, _, _ = serve(app(Step("a"), Step("stuck", stop="forever"), Step("c")), options, stop_when_ready)
    assert code == 1
    assert ("Stopping the application took longer than 0.2 s (still waiting for <Step 'stuck'> (at app/stuck)); "
            "exiting anyway.") in caplog.text
    assert events[-3:] == ["stop c", "stop stuck", "stop a"] or events[-2:] == ["stop c", "stop stuck"]


def test_a_second_signal_stops_at_once(caplog):
    def twice(serving, loop):
        def check():
            if "stop stuck" in events:
                serving._on_signal(signal.SIGINT)
            else:
                loop.call_later(0.01, check)
        stop_when_ready(serving, loop)
        check()

    began = time.monotonic()
    code, _, _ = serve(app(Step("stuck", stop="forever")), Options(no_save=True, shutdown_timeout=30), twice)
    assert code == 1 and time.monotonic() - began < 5
    assert "Received SIGINT again, stopping at once." in caplog.text
    assert "Stopped at once" in caplog.text


def test_a_signal_while_starting_fails_the_start_and_unwinds():
    def signal_soon(serving, loop):
        loop.call_later(0.05, serving._on_signal, signal.SIGTERM)

    with pytest.raises(LaunchError, match="^stopped by SIGTERM before every service had started$"):
        serve(app(Step("a"), Step("slow", start="forever")), Options(no_save=True), signal_soon)
    assert events == ["start a", "start slow", "stop a"]


def test_a_stop_requested_before_serving_begins_is_not_lost():
    def early(serving, loop):
        serving.request_stop()  # reactor.stop() before serve() ran its first step

    with pytest.raises(LaunchError, match=r"^stopped by reactor.stop\(\) before the services started$"):
        serve(app(Step("a")), during=early)


def test_a_signal_before_the_loop_is_replayed():
    signals._received.append(signal.SIGTERM)
    with pytest.raises(LaunchError, match="^stopped by SIGTERM before the services started$"):
        serve(app(Step("a")))
    assert events == []
    assert signals.take_early() == []


def test_what_the_stop_set_off_runs_before_the_tap_is_saved(monkeypatch):
    """A transport closed during the stop calls connection_lost on the loop's next turn: before the save pickles
    the application (its port still listing the connection otherwise), even when every stop was synchronous."""
    seen = []

    class Closing(service.Service):
        def stopService(self):
            service.Service.stopService(self)
            asyncio.get_running_loop().call_soon(seen.append, "connection lost")

    monkeypatch.setattr(Serving, "_save", lambda self: seen.append("saved") or 0)
    application = service.Application("app")
    Closing().setServiceParent(application)
    code, _, _ = serve(application, Options(no_save=False), during=stop_when_ready)
    assert code == 0 and seen == ["connection lost", "saved"]


def test_a_shutdown_trigger_first_added_by_a_stop_service_still_runs(monkeypatch):
    """The stop runs the system event phases only when a trigger was ever added (the module imported): one
    added by a stopService itself, the first of the run, still runs in its 'during' or 'after' phase."""
    import twistdlite
    from twistdlite import reactor

    monkeypatch.delitem(sys.modules, "twistdlite._events", raising=False)  # no trigger added so far
    monkeypatch.delattr(twistdlite, "_events", raising=False)  # (the module comes back after the test)
    seen = []

    class Adding(service.Service):
        def stopService(self):
            service.Service.stopService(self)
            reactor.addSystemEventTrigger("after", "shutdown", seen.append, "after shutdown")

    application = service.Application("app")
    Adding().setServiceParent(application)
    code, _, _ = serve(application, during=stop_when_ready)
    assert code == 0 and seen == ["after shutdown"]


def test_sighup_and_sigusr1_reach_the_log_setup():
    def poke(serving, loop):
        def later():
            serving._reopen()
            serving._rotate()
        loop.call_later(0.01, later)
        stop_when_ready(serving, loop)

    _, _, logs = serve(app(Step("a")), during=poke)
    assert logs.calls == ["reopen", "rotate"]


# -- stacks ---------------------------------------------------------------------------------

def test_service_in_task_looks_through_nested_collections():
    async def main():
        inner = service.MultiService()
        inner.setName("inner")
        root = app(Step("a"), inner)
        Step("deep", start="forever").setServiceParent(inner)
        task = asyncio.ensure_future(service.maybe_await(root.startService()))
        await asyncio.sleep(0.01)
        found = stacks.service_in_task(task)
        task.cancel()
        return found

    found = asyncio.run(main())
    assert found.name == "deep" and stacks.describe(found) == "<Step 'deep'> (at app/inner/deep)"


def test_service_in_task_for_a_plain_future():
    async def main():
        root = app(Step("a", start="future"), Step("b"))
        task = asyncio.ensure_future(service.maybe_await(root.startService()))
        await asyncio.sleep(0.01)
        found = stacks.service_in_task(task)
        task.cancel()
        return found

    assert asyncio.run(main()).name == "a"


def test_service_in_frame():
    seen = {}

    class Peek(service.Service):
        def startService(self):
            import sys

            seen["found"] = stacks.service_in_frame(sys._getframe())

    peek = Peek()
    app(peek).startService()
    assert seen["found"] is peek
    assert stacks.service_in_frame(None) is None


def test_describe_a_lone_service():
    assert stacks.describe(Step("x")) == "<Step 'x'>"


def test_dump_stacks_shows_threads_and_tasks():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="worker-x", daemon=True)
    worker.start()

    async def napping():
        await asyncio.sleep(10)

    async def main():
        task = asyncio.ensure_future(napping())
        await asyncio.sleep(0)
        text = stacks.dump_stacks()
        task.cancel()
        return text

    try:
        text = asyncio.run(main())
    finally:
        stop.set()
        worker.join()
    assert "Thread MainThread" in text and "Thread worker-x" in text
    assert "asyncio task(s):" in text and "in napping" in text


# -- signals --------------------------------------------------------------------------------

def test_deadline_interrupts_synchronous_code_and_restores_the_alarm_handler():
    def before(signum, frame):  # whatever SIGALRM did before the deadline must be restored after it
        pass

    saved = signal.signal(signal.SIGALRM, before)
    try:
        began = time.monotonic()
        with pytest.raises(signals.StartDeadline) as info:
            with signals.deadline(0.1):
                time.sleep(5)
        assert time.monotonic() - began < 2
        assert info.value.frame is not None
        assert signal.getsignal(signal.SIGALRM) is before  # not the deadline's handler, leaked
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        with signals.deadline(5):  # and when the deadline is not reached
            pass
        assert signal.getsignal(signal.SIGALRM) is before
    finally:
        signal.signal(signal.SIGALRM, saved)


class _Dies:
    pass


def _spin_until_interrupted(seconds: float = 3.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.parametrize("helper", ["deadline", "second signal"])
def test_a_signal_landing_in_a_weakref_callback_still_interrupts(helper):
    """The handler's exception raised inside a weakref callback is dropped by Python ("Exception ignored
    in ..."): the signal is delivered again, so the deadline or the second signal still cuts the code short."""
    signum = signal.SIGALRM if helper == "deadline" else signal.SIGTERM
    saved = signal.signal(signal.SIGTERM, lambda *args: None)
    seen = []

    def record(unraisable):  # what Python would print
        seen.append(unraisable)

    hook = sys.unraisablehook
    sys.unraisablehook = record
    try:
        began = time.monotonic()
        with pytest.raises(signals.StopDeadline) as info:
            with (signals.deadline(60, signals.StopDeadline) if helper == "deadline"
                  else signals.second_signal_interrupts()):
                weakref.ref(_Dies(), lambda ref: signal.raise_signal(signum))  # the handler runs in the callback
                _spin_until_interrupted()
        assert time.monotonic() - began < 2
        assert info.value.forced == (helper == "second signal")
        assert seen == []
        assert sys.unraisablehook is record  # put back
    finally:
        sys.unraisablehook = hook
        signal.signal(signal.SIGTERM, saved)


def test_deadline_that_is_not_reached():
    with signals.deadline(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with pytest.raises(signals.StartDeadline):
        with signals.deadline(0):
            pass


RUN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
def test_a_real_sigterm_stops_the_run_even_when_another_thread_takes_it(reactor, caplog):
    """The kernel may deliver the signal to any thread not blocking it; the main one, asleep in the loop's
    poll, must still wake at once (the handlers' wakeup fd), on asyncio's loop and on uvloop's."""
    caplog.set_level(logging.INFO)
    done = threading.Event()
    taker = threading.Thread(target=done.wait, daemon=True)  # SIGTERM unblocked here: the kernel picks it
    taker.start()
    sent = []

    def kill():
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread blocks it: the taker gets it

    def kill_when_ready(serving, loop):
        def check():
            if serving.readiness.said:  # sent from another thread while the main one sleeps in the poll
                threading.Timer(0.05, kill).start()
            else:
                loop.call_later(0.01, check)
        check()
        loop.call_later(10, serving.request_stop)  # the only other wake-up the loop would get

    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        code, _, _ = serve(app(Step("a")), during=kill_when_ready, reactor=reactor)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        done.set()
        taker.join()
    assert code == 0
    assert time.monotonic() - sent[0] < 5  # not woken by the 10 s timer
    assert "Received SIGTERM, shutting down." in caplog.text


class SignalUser(service.Service):
    """A service that handles SIGWINCH with the loop's own add_signal_handler."""

    def __init__(self):
        self.received = []

    def startService(self):
        service.Service.startService(self)
        asyncio.get_running_loop().add_signal_handler(signal.SIGWINCH, self.received.append, "winch")

    def stopService(self):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGWINCH)
        return service.Service.stopService(self)


@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
def test_a_service_s_own_loop_signal_handler_runs_during_the_run(reactor):
    """The run's handlers must not take the loop's signal pipe from a service's add_signal_handler (uvloop
    dispatches those only from its own wakeup fd)."""
    user = SignalUser()

    def winch_when_ready(serving, loop):
        def check():
            if user.received:
                serving.request_stop()
            elif serving.readiness.said:
                os.kill(os.getpid(), signal.SIGWINCH)
                loop.call_later(0.05, check)
            else:
                loop.call_later(0.01, check)
        check()
        loop.call_later(5, serving.request_stop)

    code, _, _ = serve(app(user), during=winch_when_ready, reactor=reactor)
    assert code == 0
    assert user.received[:1] == ["winch"]


@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
def test_the_run_puts_back_the_signal_handlers_it_found(reactor):
    def mine(signum, frame):
        pass

    saved = {signum: signal.signal(signum, mine) for signum in RUN_SIGNALS}
    try:
        code, _, _ = serve(app(Step("a")), during=stop_when_ready, reactor=reactor)
        assert code == 0
        assert {signum: signal.getsignal(signum) for signum in RUN_SIGNALS} == dict.fromkeys(RUN_SIGNALS, mine)
        assert signal.set_wakeup_fd(-1) == -1  # no wakeup fd left behind
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_a_signal_after_its_loop_closed_is_remembered_as_an_early_one():
    loop = asyncio.new_event_loop()
    saved = signal.getsignal(signal.SIGTERM)
    handlers = signals.LoopSignals(loop)
    try:
        handlers.add(signal.SIGTERM, pytest.fail, "not on a closed loop")
        loop.close()
        signal.raise_signal(signal.SIGTERM)
        assert signals.take_early() == [signal.SIGTERM]
    finally:
        handlers.restore()
    assert signal.getsignal(signal.SIGTERM) is saved


def test_catch_early_remembers_stop_signals_and_ignores_log_signals():
    saved = {signum: signal.getsignal(signum) for signum in signals.STOP_SIGNALS + signals.LOG_SIGNALS}
    try:
        signals.catch_early()
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGHUP)  # ignored: would otherwise kill us
        signal.raise_signal(signal.SIGINT)
        assert signals.take_early() == [signal.SIGTERM, signal.SIGINT]
        assert signals.take_early() == []
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
